using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Control;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>The tables the CLI prints: aligned columns, numbers on the right, no trailing blanks.</summary>
[TestFixture]
public sealed class AdminRenderingTests
{
    private static readonly DateTimeOffset Now = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    [Test]
    public void Columns_are_aligned_and_numbers_right_aligned()
    {
        var text = new TextTable("USER", ">UID", "NOTE").Add("alice", "1001", "x").Add("bob", "7", "").Render();

        Assert.That(text, Is.EqualTo(
            "USER    UID  NOTE\n" +
            "alice  1001  x\n" +
            "bob       7\n"));
    }

    [Test]
    public void Group_labels_span_their_columns()
    {
        var text = new TextTable("USER", ">SENT", ">RCPTS", ">SENT", ">RCPTS").Group("hour", 1, 2).Group("day", 3, 2).Add("alice", "1", "2", "30", "40").Render();

        var lines = text.Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(lines[0], Is.EqualTo("       -- hour ---  --- day ---"));
            Assert.That(lines[1], Is.EqualTo("USER   SENT  RCPTS  SENT  RCPTS"));
            Assert.That(lines[2], Is.EqualTo("alice     1      2    30     40"));
        });
    }

    [Test]
    public void A_newline_in_a_cell_cannot_break_the_table()
    {
        var text = new TextTable("FROM").Add("a\r\nb\tc").Render();

        Assert.That(text, Is.EqualTo("FROM\na\\x0d\\x0ab\\x09c\n"));
    }

    [Test]
    public void A_row_must_fill_every_column()
    {
        Assert.That(() => new TextTable("A", "B").Add("only one"), Throws.ArgumentException);
    }

    [TestCase(0, "0B")]
    [TestCase(1023, "1023B")]
    [TestCase(4096, "4.0K")]
    [TestCase(26214400, "25.0M")]
    [TestCase(3L * 1024 * 1024 * 1024, "3.0G")]
    public void Sizes_are_short(long bytes, string expected)
    {
        Assert.That(AdminRendering.Size(bytes), Is.EqualTo(expected));
    }

    [Test]
    public void Times_are_utc_with_a_z()
    {
        Assert.That(AdminRendering.Time(new DateTimeOffset(2030, 5, 1, 14, 0, 3, TimeSpan.FromHours(2))), Is.EqualTo("2030-05-01 12:00:03Z"));
    }

    [Test]
    public void Status_shows_health_differences_suspensions_and_the_user_table()
    {
        var status = new StatusData(
            "0.1.0", Now - TimeSpan.FromMinutes(133), 133 * 60, 3, "sock_diag",
            new StoreStatus("/var/lib/smtp-interceptor/state.db", true, 1520, Now, null),
            new TableStatus("smtp_interceptor", false, ["set suspended_uids lacks 1001"]),
            [
                new UserStatus(1001, "alice", new WindowCounts(12, 30, 0, 0, 1, 0, 0), new WindowCounts(140, 300, 1, 2, 5, 0, 7) { Held = 3 }, true),
                new UserStatus(1002, "bob", WindowCounts.Zero, new WindowCounts(1, 1, 0, 0, 0, 0, 0), false),
            ],
            [new SuspensionInfo(1001, "alice", "spam wave", Now, SuspensionSource.Admin)]);

        var text = AdminRendering.Status(status);

        Assert.That(text, Is.EqualTo("""
            smtp-interceptor 0.1.0: running for 2h 13m (since 2030-05-01 09:47:00Z), 3 active sessions, owner lookup via sock_diag
            store: /var/lib/smtp-interceptor/state.db (ok, 1520 commits, last 2030-05-01 12:00:00Z)
            table: inet smtp_interceptor DIFFERS from the configuration (restart the daemon to reinstall it; inspect with `nft list table inet smtp_interceptor`):
              - set suspended_uids lacks 1001
            suspended: alice (uid 1001) since 2030-05-01 12:00:00Z (admin): spam wave

                         ----------------- last hour ------------------  --------------- last 24 hours ----------------
            USER    UID  SENT  RCPTS  HELD  DEFERRED  REJECTED  REFUSED  SENT  RCPTS  HELD  DEFERRED  REJECTED  REFUSED  SUSPENDED
            alice  1001    12     30     0         0         1        0   140    300     3         2         5        7  yes
            bob    1002     0      0     0         0         0        0     1      1     0         0         0        0  no
            SENT: messages the upstream accepted; RCPTS: their recipients; HELD: held for review and not delivered since, deleted ones included (the quotas count them as sent); REFUSED: policy refusals (quota, size, suspension)

            """.ReplaceLineEndings("\n")));
    }

    [Test]
    public void Log_shows_one_line_per_transaction_and_shortens_long_replies()
    {
        var log = new LogData(Now - TimeSpan.FromHours(1), "alice", 1001, 50,
        [
            new LogEntry(Now, "01J0ABC", 1001, "alice", "alice@client.test", 2, 4096, "127.0.0.2:25", "127.0.0.2:25", TransactionOutcome.Delivered, "250 2.0.0 Ok: queued as ABCDEF " + new string('x', 80), 42, null),
            new LogEntry(Now - TimeSpan.FromMinutes(1), "01J0ABB", 1001, "alice", "", 0, 0, "127.0.0.2:25", "", TransactionOutcome.Refused, "", 3, null),
        ]);

        var lines = AdminRendering.Log(log).Split('\n');

        Assert.Multiple(() =>
        {
            Assert.That(lines[0], Is.EqualTo("2 transactions of alice (uid 1001) since 2030-05-01 11:00:00Z, newest first:"));
            Assert.That(lines[1], Does.Match("^TIME +ID +USER +FROM +RCPTS +SIZE +DESTINATION +REPLY$"));
            Assert.That(lines[2], Does.StartWith("2030-05-01 12:00:00Z  01J0ABC  alice  alice@client.test      2  4.0K  127.0.0.2:25  250 2.0.0 Ok: queued as ABCDEF xxx"));
            Assert.That(lines[2], Does.EndWith("..."));
            Assert.That(lines[3], Does.EndWith("<>                     0    0B  127.0.0.2:25  (refused)"));
        });
    }

    [Test]
    public void An_empty_log_says_so()
    {
        Assert.That(AdminRendering.Log(new LogData(Now, null, null, 50, [])), Is.EqualTo("no transactions since 2030-05-01 12:00:00Z\n"));
    }

    [Test]
    public void Limits_of_a_user_mark_their_own_values()
    {
        var limits = new LimitsData(
            LimitValues.Of(QuotaLimits.Defaults),
            [new ConfiguredLimits("alice", LimitValues.Of(new QuotaLimits { MessagesPerHour = 50 }.Or(QuotaLimits.Defaults)), ["messagesPerHour"])],
            new UserLimits("alice", 1001, "Limits.Users.alice", LimitValues.Of(new QuotaLimits { MessagesPerHour = 50 }.Or(QuotaLimits.Defaults)), ["messagesPerHour"], new UsageValues(12, 140, 30, 300, 1), false));

        Assert.That(AdminRendering.Limits(limits), Is.EqualTo("""
            alice (uid 1001): Limits.Users.alice over Limits.Default; not suspended
            LIMIT                      VALUE  USED
            messages per hour            50*    12
            messages per day            1000   140
            recipients per hour          500    30
            recipients per day          2500   300
            recipients per message       100     -
            connections                   20     1
            message size (bytes)    26214400     -
            USED: delivered in the sliding hour and day; connections open now
            * set by the user's own Limits.Users entry; the other values come from Limits.Default

            """.ReplaceLineEndings("\n")));
    }

    [Test]
    public void Limits_without_user_list_default_and_overrides()
    {
        var limits = new LimitsData(
            LimitValues.Of(QuotaLimits.Defaults),
            [new ConfiguredLimits("alice", LimitValues.Of(new QuotaLimits { Connections = 2 }.Or(QuotaLimits.Defaults)), ["connections"])],
            null);

        var lines = AdminRendering.Limits(limits).Split('\n');

        Assert.Multiple(() =>
        {
            Assert.That(lines[0], Is.EqualTo("LIMITS          MSG/HOUR  MSG/DAY  RCPT/HOUR  RCPT/DAY  RCPT/MSG  CONNECTIONS  SIZE (BYTES)"));
            Assert.That(lines[1], Is.EqualTo("Limits.Default       200     1000        500      2500       100           20      26214400"));
            Assert.That(lines[2], Is.EqualTo("alice                200     1000        500      2500       100           2*      26214400"));
        });
    }
}
