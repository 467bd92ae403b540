using System.Net;
using Interceptor.Daemon.Attribution;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>What the daemon makes of the packets the guard logs: a refusal naming the user (its owner for a sub-UID).</summary>
[TestFixture]
public class StrayPacketLogTests
{
    // Far above any account a test machine has; the owner is root (uid 0), which every machine has.
    private const uint RangeStart = 3_000_000_000;
    private static readonly IPEndPoint Client = IPEndPoint.Parse("127.0.0.1:41025");
    private static readonly IPEndPoint Mx = IPEndPoint.Parse("192.0.2.1:25");

    private string _path = "";
    private RecordingLogger _log = null!;
    private RefusalLog _refusals = null!;
    private StrayPacketLog _strays = null!;

    [SetUp]
    public void Create()
    {
        _path = Path.GetTempFileName();
        File.WriteAllText(_path, $"0:{RangeStart}:65536\n");
        _log = new RecordingLogger();
        _refusals = new RefusalLog(_log, TimeSpan.FromSeconds(60), new ManualClock(DateTimeOffset.UnixEpoch));
        _strays = new StrayPacketLog(25, _refusals, new SubordinateUidFile(_path, NullLogger.Instance), _log);
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
}
