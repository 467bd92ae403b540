using System.Net;
using Interceptor.Daemon.Attribution;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>
/// What the daemon makes of the packets the guard logs: a refusal naming the user (its owner for a sub-UID); and a group
/// socket that fails for good, closed so that it no longer holds the group, and bound again.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public class StrayPacketLogTests
{
    // Far above any account a test machine has; the owner is root (uid 0), which every machine has.
    private const uint RangeStart = 3_000_000_000;
    private static readonly IPEndPoint Client = IPEndPoint.Parse("127.0.0.1:41025");
    private static readonly IPEndPoint Mx = IPEndPoint.Parse("192.0.2.1:25");
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private string _path = "";
    private RecordingLogger _log = null!;
    private RefusalLog _refusals = null!;
    private StrayPacketLog _strays = null!;
    private BindingKernel _kernel = null!;
    private ManualClock _clock = null!;
    private List<TimeSpan> _waits = null!;

    [SetUp]
    public void Create()
    {
        _path = Path.GetTempFileName();
        File.WriteAllText(_path, $"0:{RangeStart}:65536\n");
        _log = new RecordingLogger();
        _refusals = new RefusalLog(_log, TimeSpan.FromSeconds(60), new ManualClock(DateTimeOffset.UnixEpoch));
        _kernel = new BindingKernel();
        _clock = new ManualClock(DateTimeOffset.UnixEpoch);
        _waits = [];
        _strays = new StrayPacketLog(25, _refusals, new SubordinateUidFile(_path, NullLogger.Instance), _log)
        {
            Bind = _kernel.Bind,
            RebindAfter = TimeSpan.FromSeconds(5),
            Time = _clock,
            Delay = RecordWait,
        };
    }

    [TearDown]
    public async Task Dispose()
    {
        _strays.Dispose();
        await _refusals.DisposeAsync();
        File.Delete(_path);
    }

    [Test]
    public void A_refused_syn_is_logged_as_its_users_with_where_it_went()
    {
        _strays.Logged(new LoggedPacket(RulesetSpec.StraySynLogPrefix, 0, Client, Mx));

        Assert.That(_log.Entries, Has.Count.EqualTo(1));
        var line = _log.Entries[0];
        Assert.Multiple(() =>
        {
            Assert.That(line.State["Cause"], Is.EqualTo(StrayPacketLog.StraySyn));
            Assert.That(line.State["Uid"], Is.EqualTo(0u));
            Assert.That(line.State["User"], Is.EqualTo("root"));
            Assert.That(line.Text, Does.Contain("127.0.0.1:41025 to 192.0.2.1:25"));
            Assert.That(line.Text, Does.Contain("no NAT rule saw it: reset by the guard table"));
        });
    }

    [Test]
    public void A_dropped_packet_of_a_sub_uid_is_charged_to_its_owner_and_names_the_sub_uid()
    {
        _strays.Logged(new LoggedPacket(RulesetSpec.StrayPacketLogPrefix, RangeStart + 7, Client, Mx));

        var line = _log.Entries.Single();
        Assert.Multiple(() =>
        {
            Assert.That(line.State["Cause"], Is.EqualTo(StrayPacketLog.StrayPacket));
            Assert.That(line.State["Uid"], Is.EqualTo(0u), "the owner of the range");
            Assert.That(line.Text, Does.Contain($"sent as sub-UID {RangeStart + 7}"));
            Assert.That(line.Text, Does.Contain("dropped by the guard table"));
        });
    }

    [Test]
    public void A_packet_without_an_owning_socket_is_logged_as_of_an_unknown_owner()
    {
        _strays.Logged(new LoggedPacket(RulesetSpec.StraySynLogPrefix, null, Client, Mx));

        var line = _log.Entries.Single();
        Assert.Multiple(() =>
        {
            Assert.That(line.State["Cause"], Is.EqualTo(StrayPacketLog.StraySyn));
            Assert.That(line.State.ContainsKey("Uid"), Is.False);
            Assert.That(line.Text, Does.Contain("from an unknown owner"));
        });
    }

    [Test]
    public void Packets_another_rule_logs_to_the_group_are_not_reported()
    {
        _strays.Logged(new LoggedPacket("ulogd: dropped", 0, Client, Mx));

        Assert.Multiple(() =>
        {
            Assert.That(_log.Entries, Is.Empty);
            Assert.That(_strays.Heard, Is.EqualTo(1));
        });
    }

    [Test]
    public void A_socket_that_fails_is_closed_before_the_group_is_bound_again_and_its_packets_are_named_again()
    {
        Assert.That(_strays.TryBind(), Is.True);
        _kernel.FailOnItsThread(0, new LinuxInteropException("recvmsg", 9));

        Assert.That(_kernel.WaitForBinds(2, Patience) && BoundAgainLogged(), Is.True, "bound again");
        _kernel.Sockets[1].Logged(new LoggedPacket(RulesetSpec.StraySynLogPrefix, 0, Client, Mx));

        Assert.Multiple(() =>
        {
            Assert.That(_kernel.ClosedBeforeNextBind, Is.True, "the failed socket held the group: closed first");
            Assert.That(_log.Errors.Single(), Does.Contain("NFLOG group 25 stopped").And.Contain("the group bound anew in 5 s"));
            Assert.That(Waits, Is.EqualTo(new[] { TimeSpan.FromSeconds(5) }));
            Assert.That(_log.Lines, Has.One.Contains("NFLOG group 25 bound again after it stopped (0 refused attempt(s) first)"));
            Assert.That(_log.Lines[^1], Does.Contain("from uid 0 (root)").And.Contain("127.0.0.1:41025 to 192.0.2.1:25"));
        });
    }

    [Test]
    public void A_refused_rebind_is_logged_once_and_retried_at_longer_intervals_until_the_kernel_takes_it()
    {
        Assert.That(_strays.TryBind(), Is.True);
        _kernel.RefuseNext = 3;
        _kernel.FailOnItsThread(0, new LinuxInteropException("recvmsg", 9));

        Assert.That(_kernel.WaitForBinds(2, Patience) && BoundAgainLogged(), Is.True, "bound again after three refusals");
        Assert.Multiple(() =>
        {
            Assert.That(_kernel.Attempts, Is.EqualTo(5), "the first bind, three refused, the fourth try taken");
            Assert.That(Waits.Select(w => w.TotalSeconds), Is.EqualTo(new[] { 5.0, 10, 20, 40 }), "the wait doubles");
            Assert.That(_log.Lines.Count(l => l.Contains("could not be bound again")), Is.EqualTo(1), "logged once");
            Assert.That(_log.Lines, Has.One.Contains("(3 refused attempt(s) first)"));
        });
    }

    [Test]
    public void A_socket_that_fails_again_soon_after_its_rebind_waits_longer_and_one_that_held_starts_over()
    {
        Assert.That(_strays.TryBind(), Is.True);
        _kernel.FailOnItsThread(0, new LinuxInteropException("recvmsg", 9));
        Assert.That(_kernel.WaitForBinds(2, Patience), Is.True);

        _clock.Advance(TimeSpan.FromSeconds(30));
        _kernel.FailOnItsThread(1, new LinuxInteropException("recvmsg", 9));
        Assert.That(_kernel.WaitForBinds(3, Patience), Is.True);

        _clock.Advance(TimeSpan.FromMinutes(2));
        _kernel.FailOnItsThread(2, new LinuxInteropException("recvmsg", 9));
        Assert.That(_kernel.WaitForBinds(4, Patience), Is.True);

        Assert.That(Waits.Select(w => w.TotalSeconds), Is.EqualTo(new[] { 5.0, 10, 5 }), "failed 30 s after its bind: twice the wait; after two minutes: the first wait again");
    }

    [Test]
    public void Nothing_is_bound_again_once_disposed()
    {
        Assert.That(_strays.TryBind(), Is.True);
        _strays.Dispose();
        _kernel.FailOnItsThread(0, new LinuxInteropException("recvmsg", 9));

        Assert.That(_kernel.WaitForBinds(2, TimeSpan.FromMilliseconds(300)), Is.False);
        Assert.That(_kernel.Sockets[0].Closed, Is.True);
    }

    [Test]
    public void A_wait_of_zero_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new StrayPacketLog(25, _refusals, new SubordinateUidFile(_path, NullLogger.Instance), _log)
        {
            RebindAfter = TimeSpan.Zero,
        });
    }

    private IReadOnlyList<TimeSpan> Waits
    {
        get
        {
            lock (_waits)
            {
                return [.. _waits];
            }
        }
    }

    // The rebind's wait, recorded and not waited for: on the pool, as a real delay resumes.
    private async Task RecordWait(TimeSpan wait, CancellationToken cancellationToken)
    {
        lock (_waits)
        {
            _waits.Add(wait);
        }

        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
    }

    // The line follows the bind that succeeded, on the rebinding thread.
    private bool BoundAgainLogged()
    {
        var deadline = Environment.TickCount64 + (long)Patience.TotalMilliseconds;
        while (!_log.Lines.Any(l => l.Contains("bound again after it stopped", StringComparison.Ordinal)))
        {
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            Thread.Sleep(5);
        }

        return true;
    }

    /// <summary>A stand-in for NFLOG's bind: one socket per bind, a group held until its socket is closed.</summary>
    private sealed class BindingKernel
    {
        private readonly Lock _lock = new();
        private int _attempts;
        private readonly List<GroupSocket> _sockets = [];

        public int RefuseNext { get; set; }

        public bool ClosedBeforeNextBind { get; private set; } = true;

        public int Attempts
        {
            get
            {
                lock (_lock)
                {
                    return _attempts;
                }
            }
        }

        public IReadOnlyList<GroupSocket> Sockets
        {
            get
            {
                lock (_lock)
                {
                    return [.. _sockets];
                }
            }
        }

        public GroupSocket Bind(ushort group, Action<LoggedPacket> logged, Action lost, Action<Exception> failed)
        {
            lock (_lock)
            {
                _attempts++;
                if (_sockets.Any(s => !s.Closed))
                {
                    ClosedBeforeNextBind = false;
                    throw new LinuxInteropException($"NFLOG group {group}: another process has bound it", 1);
                }

                if (RefuseNext > 0)
                {
                    RefuseNext--;
                    throw new LinuxInteropException($"NFLOG group {group}: another process has bound it", 1);
                }

                var socket = new GroupSocket(logged, failed);
                _sockets.Add(socket);
                return socket;
            }
        }

        public void FailOnItsThread(int socket, Exception e)
        {
            var failing = Sockets[socket];
            var thread = new Thread(() => failing.Failed(e));
            thread.Start();
            thread.Join();
        }

        public bool WaitForBinds(int count, TimeSpan within)
        {
            var deadline = Environment.TickCount64 + (long)within.TotalMilliseconds;
            while (Environment.TickCount64 < deadline)
            {
                if (Sockets.Count >= count)
                {
                    return true;
                }

                Thread.Sleep(5);
            }

            return false;
        }
    }

    private sealed class GroupSocket(Action<LoggedPacket> logged, Action<Exception> failed) : IDisposable
    {
        public Action<LoggedPacket> Logged { get; } = logged;

        public Action<Exception> Failed { get; } = failed;

        public bool Closed { get; private set; }

        public void Dispose() => Closed = true;
    }
}
