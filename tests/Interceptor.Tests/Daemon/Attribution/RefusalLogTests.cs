using System.Net;
using Interceptor.Daemon.Attribution;
using Interceptor.Tests.Core.Policy;
using Microsoft.Extensions.Logging;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Attribution;

[TestFixture]
public class RefusalLogTests
{
    private const uint Root = 0;
    private const uint Unnamed = 3_999_999_999; // no passwd entry: named "#3999999999"
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(60);
    private static readonly IPEndPoint Client = new(IPAddress.Loopback, 40000);
    private static readonly IPEndPoint Mta = new(IPAddress.Loopback, 26);

    private ManualClock _clock = null!;
    private RecordingLogger _log = null!;
    private RefusalLog _refusals = null!;

    [SetUp]
    public void Create()
    {
        _clock = new ManualClock(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        _log = new RecordingLogger();
        _refusals = new RefusalLog(_log, Interval, _clock, maxKeys: 4);
    }

    [TearDown]
    public async Task Dispose() => await _refusals.DisposeAsync();

    [Test]
    public void First_refusal_is_logged_at_once_naming_uid_and_user()
    {
        _refusals.Refused("local_destination", Root, Client, Mta, "relaying to 127.0.0.1:26 is not permitted");

        Assert.That(_log.Entries, Has.Count.EqualTo(1));
        var line = _log.Entries[0];
        Assert.Multiple(() =>
        {
            Assert.That(line.Level, Is.EqualTo(LogLevel.Warning));
            Assert.That(line.Text, Does.Contain("127.0.0.1:40000 to 127.0.0.1:26 from uid 0 (root)"));
            Assert.That(line.Text, Does.Contain("relaying to 127.0.0.1:26 is not permitted"));
            Assert.That(line.State["Uid"], Is.EqualTo(Root));
            Assert.That(line.State["User"], Is.EqualTo("root"));
            Assert.That(line.State["Cause"], Is.EqualTo("local_destination"));
        });
    }

    [Test]
    public void Repeats_are_counted_and_summarised_once_per_interval()
    {
        for (var i = 0; i < 1_000; i++)
        {
            _refusals.Refused("not_redirected", Unnamed, new IPEndPoint(IPAddress.Loopback, 40000 + i), null, "not redirected");
        }

        Assert.That(_log.Entries, Has.Count.EqualTo(1), "only the first is written at once");
        _clock.Advance(Interval);
        _refusals.Flush();

        Assert.That(_log.Entries, Has.Count.EqualTo(2));
        var summary = _log.Entries[1];
        Assert.Multiple(() =>
        {
            Assert.That(summary.Text, Does.StartWith("refused 999 more connections from uid 3999999999 (#3999999999) in the last 60 s: not_redirected"));
            Assert.That(summary.Text, Does.Contain("the last was 127.0.0.1:40999 to (not redirected)"));
            Assert.That(summary.State["Count"], Is.EqualTo(999L));
        });
    }

    [Test]
    public void A_quiet_interval_forgets_the_key_so_the_next_refusal_is_logged_at_once()
    {
        _refusals.Refused("not_redirected", Root, Client, null, "not redirected");
        _refusals.Refused("not_redirected", Root, Client, null, "not redirected");
        _clock.Advance(Interval);
        _refusals.Flush(); // summary of 1
        _clock.Advance(Interval);
        _refusals.Flush(); // nothing since: forgotten
        Assert.That(_log.Entries, Has.Count.EqualTo(2));

        _refusals.Refused("not_redirected", Root, Client, null, "not redirected");

        Assert.That(_log.Entries, Has.Count.EqualTo(3));
        Assert.That(_log.Entries[2].Text, Does.StartWith("refused 127.0.0.1:40000 to (not redirected) from uid 0 (root)"));
    }

    [Test]
    public void Causes_and_uids_are_separate_keys()
    {
        _refusals.Refused("not_redirected", Root, Client, null, "a");
        _refusals.Refused("local_destination", Root, Client, Mta, "b");
        _refusals.Refused("not_redirected", Unnamed, Client, null, "c");
        _refusals.Refused("not_redirected", Root, Client, null, "a");

        Assert.That(_log.Entries.Select(l => l.State["Reason"]), Is.EqualTo(new[] { "a", "b", "c" }));
    }

    [Test]
    public void Unknown_owners_share_one_key_per_cause()
    {
        _refusals.Refused("owner_unknown", null, Client, Mta, "no socket owner found");
        _refusals.Refused("owner_unknown", null, Client, Mta, "no socket owner found");
        _refusals.Refused("owner_lookup_failed", null, Client, Mta, "owner lookup failed: EMFILE", LogLevel.Error);
        _refusals.Flush();

        Assert.That(_log.Entries.Select(l => l.Text), Is.EqualTo(new[]
        {
            "refused 127.0.0.1:40000 to 127.0.0.1:26 from an unknown owner: no socket owner found; more owner_unknown refusals of unknown owners are summarised every 60 s",
            "refused 127.0.0.1:40000 to 127.0.0.1:26 from an unknown owner: owner lookup failed: EMFILE; more owner_lookup_failed refusals of unknown owners are summarised every 60 s",
            "refused 1 more connections from unknown owners in the last 0 s: owner_unknown; the last was 127.0.0.1:40000 to 127.0.0.1:26: no socket owner found",
        }));
        Assert.That(_log.Entries[1].Level, Is.EqualTo(LogLevel.Error));
    }

    [Test]
    public void A_flood_writes_at_most_two_lines_per_interval_and_every_refusal_is_counted()
    {
        const int perInterval = 15_000;
        const int intervals = 10;
        for (var round = 0; round < intervals; round++)
        {
            for (var i = 0; i < perInterval; i++)
            {
                _refusals.Refused("local_destination", Unnamed, Client, Mta, "not permitted");
            }

            _clock.Advance(Interval);
            _refusals.Flush();
        }

        Assert.That(_log.Entries, Has.Count.EqualTo(1 + intervals), "the first line, then one summary per interval");
        var counted = 1 + _log.Entries.Skip(1).Sum(l => (long)l.State["Count"]!);
        Assert.That(counted, Is.EqualTo(perInterval * intervals));
    }

    [Test]
    public void Uids_folded_for_one_cause_leave_another_cause_named()
    {
        // Many sub-UIDs refused as not redirected, then the same user's SYN past the redirect: still named.
        for (uint uid = 1_000_000; uid < 1_000_010; uid++)
        {
            _refusals.Refused("not_redirected", uid, Client, null, "not redirected");
        }

        _refusals.Refused("stray_syn", Root, Client, Mta, "a SYN past the redirect");

        var stray = _log.Entries.Single(l => Equals(l.State["Cause"], "stray_syn"));
        Assert.That(stray.State["Uid"], Is.EqualTo(Root));
    }

    [Test]
    public void Too_many_uids_fold_into_the_unknown_owner_key()
    {
        for (uint uid = 1_000_000; uid < 1_000_010; uid++)
        {
            _refusals.Refused("not_redirected", uid, Client, null, "not redirected");
        }

        Assert.Multiple(() =>
        {
            Assert.That(_log.Entries.Count(l => l.State.ContainsKey("Uid")), Is.EqualTo(4), "maxKeys uids get their own line");
            Assert.That(_log.Entries, Has.Count.EqualTo(5), "the rest share one");
        });
    }

    [Test]
    public async Task Disposing_writes_the_last_summaries()
    {
        var refusals = new RefusalLog(_log, Interval, _clock);
        refusals.Refused("not_redirected", Root, Client, null, "x");
        refusals.Refused("not_redirected", Root, Client, null, "x");
        refusals.Refused("not_redirected", Root, Client, null, "x");

        await refusals.DisposeAsync();

        Assert.That(_log.Entries, Has.Count.EqualTo(2));
        Assert.That(_log.Entries[1].State["Count"], Is.EqualTo(2L));
    }

    [Test]
    public async Task The_running_loop_writes_summaries_by_itself()
    {
        var refusals = new RefusalLog(_log, TimeSpan.FromMilliseconds(50), TimeProvider.System);
        refusals.Start();
        refusals.Refused("not_redirected", Root, Client, null, "x");
        refusals.Refused("not_redirected", Root, Client, null, "x");

        for (var i = 0; i < 100 && _log.Entries.Count < 2; i++)
        {
            await Task.Delay(20);
        }

        Assert.That(_log.Entries, Has.Count.EqualTo(2));
        await refusals.DisposeAsync();
    }
}
