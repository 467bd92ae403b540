using Interceptor.Core.Options;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

[TestFixture]
public sealed class HoldReleaserTests
{
    private static readonly DateTimeOffset Start = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly HoldOptions _options = new() { Retention = TimeSpan.FromDays(14), ReleaseRetry = TimeSpan.FromHours(2) };
    private string _directory = "";
    private ManualClock _clock = null!;
    private HoldStore _store = null!;
    private ScriptedDelivery _delivery = null!;
    private RecordingLogger _log = null!;
    private List<HeldMessage> _accounted = null!;
    private List<(string Reason, IReadOnlyDictionary<string, string> Facts)> _alerts = null!;
    private HoldReleaser _releaser = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = HoldSamples.TemporaryDirectory();
        _clock = new ManualClock(Start);
        _store = new HoldStore(_directory, _clock, "web1.example", includeProcess: false);
        _delivery = new ScriptedDelivery();
        _log = new RecordingLogger();
        _accounted = [];
        _alerts = [];
        _releaser = new HoldReleaser(
            _store, _delivery, _options, _clock, _log,
            (held, _, _) => { _accounted.Add(held); return Task.CompletedTask; },
            (reason, facts, _) => { _alerts.Add((reason, facts)); return Task.CompletedTask; });
    }

    [TearDown]
    public void TearDown()
    {
        _releaser.Dispose();
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<string> HoldOneAsync() =>
        await _store.HoldAsync(HoldSamples.Message(), new BytesSpool(HoldSamples.Body), "suspended-user", new StageFinding("user alice is suspended"), CancellationToken.None);

    [Test]
    public async Task Nothing_held_is_delivered_until_it_is_released_then_once_and_only_then_counted()
    {
        var id = await HoldOneAsync();
        await _releaser.RunOnceAsync(CancellationToken.None);
        Assert.That(_delivery.Attempts, Is.Empty);

        await _releaser.ReleaseAsync(id, 0, CancellationToken.None);
        await _releaser.RunOnceAsync(CancellationToken.None);
        await _releaser.RunOnceAsync(CancellationToken.None);

        Assert.That(_delivery.Attempts, Has.Count.EqualTo(1));
        Assert.That(_delivery.Attempts[0].Message, Does.StartWith($"X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id={id}\r\nSubject: hi"));
        var record = _store.Find(id)!;
        Assert.That(record.State, Is.EqualTo(HoldState.Delivered));
        Assert.That(record.Attempts, Is.EqualTo(1));
        Assert.That(File.Exists(Path.Combine(_directory, id + ".eml")), Is.False, "the delivered message's file is dropped");
        Assert.That(_accounted.Select(a => a.Id), Is.EqualTo(new[] { id }), "the quotas count it once, when delivered");
    }

    [Test]
    public async Task A_deferred_delivery_is_retried_with_back_off_and_fails_with_an_alert_when_the_retry_time_is_over()
    {
        var id = await HoldOneAsync();
        for (var i = 0; i < 10; i++)
        {
            _delivery.Answers.Enqueue(new DeliveryOutcome(DeliveryKind.Temporary, "RCPT <bob@example.net>: 451 4.7.1 try later", "192.0.2.25:25"));
        }

        await _releaser.ReleaseAsync(id, 0, CancellationToken.None);
        await _releaser.RunOnceAsync(CancellationToken.None);
        var afterFirst = _store.Find(id)!;
        Assert.That(afterFirst.State, Is.EqualTo(HoldState.Released));
        Assert.That(afterFirst.NextAttempt, Is.EqualTo(Start + TimeSpan.FromMinutes(1)));

        // Not due yet: no attempt.
        _clock.Advance(TimeSpan.FromSeconds(30));
        await _releaser.RunOnceAsync(CancellationToken.None);
        Assert.That(_delivery.Attempts, Has.Count.EqualTo(1));

        var gaps = new List<TimeSpan>();
        while (_store.Find(id)!.State == HoldState.Released)
        {
            var before = _store.Find(id)!;
            _clock.Now = before.NextAttempt!.Value;
            await _releaser.RunOnceAsync(CancellationToken.None);
            var after = _store.Find(id)!;
            if (after.NextAttempt is { } next)
            {
                gaps.Add(next - _clock.Now);
            }
        }

        Assert.That(gaps.Take(3), Is.EqualTo(new[] { TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(8) }));
        var failed = _store.Find(id)!;
        Assert.That(failed.State, Is.EqualTo(HoldState.Failed));
        Assert.That(_clock.Now - Start, Is.LessThanOrEqualTo(_options.ReleaseRetry));
        Assert.That(File.Exists(Path.Combine(_directory, id + ".eml")), Is.True, "kept for the admin");
        Assert.That(_alerts, Has.Count.EqualTo(1));
        Assert.That(_alerts[0].Facts["SMTPI_HOLD_ID"], Is.EqualTo(id));
        Assert.That(_alerts[0].Reason, Does.Contain("Hold.ReleaseRetryHours").And.Contain("451 4.7.1"));
        Assert.That(_accounted, Is.Empty);
    }

    [Test]
    public async Task A_permanent_refusal_fails_at_once_alerts_and_can_be_released_again()
    {
        var id = await HoldOneAsync();
        _delivery.Answers.Enqueue(new DeliveryOutcome(DeliveryKind.Permanent, "end of data: 554 5.7.1 rejected", "192.0.2.25:25"));
        await _releaser.ReleaseAsync(id, 0, CancellationToken.None);
        await _releaser.RunOnceAsync(CancellationToken.None);

        Assert.That(_store.Find(id)!.State, Is.EqualTo(HoldState.Failed));
        Assert.That(_store.Find(id)!.LastResult, Is.EqualTo("end of data: 554 5.7.1 rejected"));
        Assert.That(_alerts.Single().Reason, Does.Contain("554 5.7.1 rejected"));
        Assert.That(_log.Errors.Single(), Does.Contain(id).And.Contain("failed"));

        await _releaser.ReleaseAsync(id, 0, CancellationToken.None);
        await _releaser.RunOnceAsync(CancellationToken.None);
        Assert.That(_store.Find(id)!.State, Is.EqualTo(HoldState.Delivered));
        Assert.ThrowsAsync<InvalidOperationException>(async () => await _releaser.ReleaseAsync(id, 0, CancellationToken.None));
    }

    [Test]
    public async Task Held_messages_older_than_the_retention_are_deleted_and_logged_younger_ones_stay()
    {
        var old = await HoldOneAsync();
        _clock.Advance(TimeSpan.FromDays(10));
        var young = await HoldOneAsync();

        _clock.Advance(TimeSpan.FromDays(4) + TimeSpan.FromMinutes(1));
        await _releaser.RunOnceAsync(CancellationToken.None);

        Assert.That(_store.List().Select(r => r.Id), Is.EqualTo(new[] { young }));
        Assert.That(File.Exists(Path.Combine(_directory, old + ".eml")), Is.False);
        Assert.That(_log.Lines, Has.Some.Contains(old).And.Contains("Hold.RetentionDays"));
    }

    [Test]
    public async Task One_users_delivery_that_hangs_does_not_hold_another_users_released_mail()
    {
        // Her MX answers each command just within the reply timeout: her attempt lasts hours. Bob's, released meanwhile,
        // goes at once; hers goes on, and a second message of hers waits behind her first.
        var hers = new TaskCompletionSource<DeliveryOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        var delivery = new GatedDelivery(slowUid: 1001, hers.Task);
        using var releaser = new HoldReleaser(_store, delivery, _options, _clock, _log);
        var alice1 = await HoldOneAsync();
        var alice2 = await HoldOneAsync();
        var bob = await _store.HoldAsync(HoldSamples.Message(uid: 1002, user: "bob"), new BytesSpool(HoldSamples.Body), "suspended-user",
            new StageFinding("user bob is suspended"), CancellationToken.None);
        await releaser.ReleaseAsync(alice1, 0, CancellationToken.None);
        await releaser.ReleaseAsync(alice2, 0, CancellationToken.None);
        var alicePass = releaser.RunOnceAsync(CancellationToken.None);
        await delivery.SlowStarted.WaitAsync(TimeSpan.FromSeconds(10));

        await releaser.ReleaseAsync(bob, 0, CancellationToken.None);
        await releaser.RunOnceAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(_store.Find(bob)!.State, Is.EqualTo(HoldState.Delivered), "bob's went while alice's hung");
        Assert.That(alicePass.IsCompleted, Is.False);
        Assert.That(delivery.Attempted, Is.EqualTo(new[] { 1001u, 1002u }), "one of hers at a time");
        hers.SetResult(new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 ok", "192.0.2.25:25"));
        await alicePass.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(new[] { alice1, alice2 }.Select(id => _store.Find(id)!.State), Is.All.EqualTo(HoldState.Delivered));
    }

    [Test]
    public async Task A_record_that_cannot_be_delivered_as_it_stands_is_retried_later_and_the_users_next_message_goes()
    {
        // An edited record (a destination that does not parse) made the delivery throw: the worker stopped there, and the
        // same record came first again at every pass, before all her other released mail.
        var broken = await HoldOneAsync();
        var next = await HoldOneAsync();
        var delivery = new ThrowingDelivery(broken);
        using var releaser = new HoldReleaser(_store, delivery, _options, _clock, _log);
        await releaser.ReleaseAsync(broken, 0, CancellationToken.None);
        await releaser.ReleaseAsync(next, 0, CancellationToken.None);

        await releaser.RunOnceAsync(CancellationToken.None);

        var record = _store.Find(broken)!;
        Assert.That(record.State, Is.EqualTo(HoldState.Released));
        Assert.That(record.Attempts, Is.EqualTo(1));
        Assert.That(record.NextAttempt, Is.EqualTo(Start + HoldReleaser.FirstRetry));
        Assert.That(record.LastResult, Does.Contain("not delivered: An invalid IP address was specified"));
        Assert.That(_store.Find(next)!.State, Is.EqualTo(HoldState.Delivered));
    }

    [Test]
    public async Task A_delivered_release_whose_record_cannot_be_written_waits_for_the_next_check_instead_of_going_again_at_once()
    {
        // A full disk: the delivery went, its record could not say so, so the message is still due. Woken again at once, the
        // worker delivered it every 200 ms (the wake's settle time) for as long as the disk stayed full.
        var directory = HoldSamples.TemporaryDirectory();
        var disk = new FullDisk();

        // The service's first pass also sweeps stray files older than the retention by their real mtime: on the fixture's
        // clock (2030) that is every file, the record being written by the release included.
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        try
        {
            using var store = new HoldStore(directory, clock, "web1.example", includeProcess: false, disk);
            var delivery = new DeliveryThatFillsTheDisk(disk);
            using var releaser = new HoldReleaser(store, delivery, _options, clock, _log);
            var id = await store.HoldAsync(HoldSamples.Message(), new BytesSpool(HoldSamples.Body), "suspended-user", new StageFinding("user alice is suspended"), CancellationToken.None);

            await releaser.StartAsync(CancellationToken.None);
            await releaser.ReleaseAsync(id, 0, CancellationToken.None);
            await Task.Delay(TimeSpan.FromSeconds(2));
            await releaser.StopAsync(CancellationToken.None);

            // One delivery, from the release's wake; two if that wake found the service before its first look (which then
            // took the message, and the wake still pending took it again). Never one every 200 ms: about ten in 2 s.
            Assert.Multiple(() =>
            {
                Assert.That(delivery.Attempts, Is.InRange(1, 2), "deliveries until the next check (30 s)");
                Assert.That(store.Find(id)!.State, Is.EqualTo(HoldState.Released), "still due: its record could not be written");
                Assert.That(_log.Errors, Has.Some.Contains("hold-and-release upkeep failed: No space left on device"));
            });
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Delivers, and the disk is full from then on: the record that would say so cannot be written.</summary>
    private sealed class DeliveryThatFillsTheDisk(FullDisk disk) : IHeldDelivery
    {
        private int _attempts;

        public int Attempts => Volatile.Read(ref _attempts);

        public Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token)
        {
            Interlocked.Increment(ref _attempts);
            disk.Full = true;
            return Task.FromResult(new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 ok", "192.0.2.25:25"));
        }
    }

    /// <summary>The real disk until <see cref="Full"/>; then every file write fails as ENOSPC does.</summary>
    private sealed class FullDisk : IHoldDisk
    {
        private volatile bool _full;

        public bool Full
        {
            get => _full;
            set => _full = value;
        }

        public Task WriteFileAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken token) =>
            Full ? throw new IOException("No space left on device") : HoldDisk.Instance.WriteFileAsync(path, write, token);

        public void Move(string source, string destination) => HoldDisk.Instance.Move(source, destination);

        public void SyncDirectory(string directory) => HoldDisk.Instance.SyncDirectory(directory);

        public void Delete(string path) => HoldDisk.Instance.Delete(path);
    }

    private sealed class ThrowingDelivery(string brokenId) : IHeldDelivery
    {
        public Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token) =>
            held.Id == brokenId
                ? throw new FormatException("An invalid IP address was specified.")
                : Task.FromResult(new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 ok", "192.0.2.25:25"));
    }

    /// <summary>Delivers at once, except one user's messages, which wait for <paramref name="slow"/>.</summary>
    private sealed class GatedDelivery(uint slowUid, Task<DeliveryOutcome> slow) : IHeldDelivery
    {
        private readonly TaskCompletionSource _slowStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task SlowStarted => _slowStarted.Task;

        public List<uint> Attempted { get; } = [];

        public Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token)
        {
            lock (Attempted)
            {
                Attempted.Add(held.Uid);
            }

            if (held.Uid != slowUid)
            {
                return Task.FromResult(new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 ok", "192.0.2.25:25"));
            }

            _slowStarted.TrySetResult();
            return slow;
        }
    }

    [Test]
    public void The_back_off_doubles_from_a_minute_up_to_an_hour() =>
        Assert.That(new[] { 1, 2, 3, 7, 8, 30 }.Select(HoldReleaser.Backoff), Is.EqualTo(new[]
        {
            TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(60), TimeSpan.FromMinutes(60), TimeSpan.FromMinutes(60),
        }));
}
