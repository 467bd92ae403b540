using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.3: one user must not be able to fill the state store (and so stop everyone's mail with 451 4.3.0).
/// Transactions that never reach DATA are counted per user, kind and minute instead of stored one row each, they
/// count as errors of the session and towards automatic suspension, and State.MaxBytes prunes the oldest rows.
/// </summary>
[TestFixture]
[NonParallelizable] // a thousand transactions within the flood's time
[CancelAfter(240_000)]
public sealed class StoreFloodTests
{
    private readonly List<string> _alertFiles = [];

    /// <summary>Where the alert command writes; removed after the test, whatever its result.</summary>
    private string NewAlertFile()
    {
        var path = Path.Combine(Path.GetTempPath(), "smtpi-alert-" + Guid.NewGuid().ToString("N"));
        _alertFiles.Add(path);
        return path;
    }

    [TearDown]
    public void RemoveAlertFiles()
    {
        foreach (var path in _alertFiles)
        {
            File.Delete(path);
        }

        _alertFiles.Clear();
    }

    [Test]
    public async Task Mail_refused_and_mail_rset_loops_are_tallied_not_stored_per_row_cut_off_by_the_error_limit_and_suspend_the_user()
    {
        var alert = NewAlertFile();
        // Suspension.UnsentLimit at its default, 1000 transactions ended before DATA within Suspension.RefusalWindowMinutes.
        var config = Config(
            ("Smtp.ErrorDelayMilliseconds", 1),
            ("Alerts.Command", AlertCommand(alert)));
        await using var s = await Scenario.StartAsync(config: config);
        var alice = TestUsers.Alice;
        var bob = TestUsers.Bob;
        var state = StateDirectory(s.RequireDaemon);
        AssertDelivered(await SendAsync(s, alice, "before"), s.Describe());
        var bytesBefore = DirectoryBytes(state);
        var usedBefore = await UsedBytesAsync(s, state);
        var linesBefore = LinesAbout(s.RequireDaemon, bob);

        // MAIL+RSET first (600, under the suspension limit), then refused MAIL until the kernel refuses bob.
        var rset = await LoopAsync(s, bob, "rset", 600);
        var duringRset = await SendAsync(s, alice, "during-rset");
        var junkRun = LoopAsync(s, bob, "junk", 4000);
        var duringJunk = await SendAsync(s, alice, "during-junk");
        var junk = await junkRun;
        var suspended = await WaitForSuspendedAsync(s.Ns, bob.Uid, suspended: true, TimeSpan.FromSeconds(10));
        var after = await SendAsync(s, alice, "after");
        var alerted = await WaitForAlertAsync(alert, TimeSpan.FromSeconds(10));

        // The admin's view flushes the tallies; the rows are then on disk.
        var users = await CliAsync(s.Ns, s.RequireDaemon, "users", "--json");
        var log = await CliAsync(s.Ns, s.RequireDaemon, "log", "--user", bob.Name);
        var bytesAfter = DirectoryBytes(state);
        var usedAfter = await UsedBytesAsync(s, state);
        var bobRows = await SqlAsync(s, state, $"SELECT count(*) FROM transactions WHERE uid = {bob.Uid};");
        var tallyRows = await SqlAsync(s, state, "SELECT count(*) FROM sqlite_master WHERE name = 'tallies';") == "0"
            ? "(no tallies table)"
            : await SqlAsync(s, state, $"SELECT count(*) || ' rows, ' || coalesce(sum(count), 0) || ' counted' FROM tallies WHERE uid = {bob.Uid};");
        var lines = LinesAbout(s.RequireDaemon, bob) - linesBefore;
        var transactions = rset.Transactions + junk.Transactions;
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"bob: MAIL+RSET {rset.Summary}\nbob: MAIL X-JUNK=1 {junk.Summary}\n" +
            $"state directory {bytesBefore} -> {bytesAfter} bytes (+{bytesAfter - bytesBefore} for {transactions} transactions, WAL included); " +
            $"database pages in use {usedBefore} -> {usedAfter} bytes; " +
            $"bob's transaction rows {bobRows}; tallies {tallyRows}; log lines naming bob {lines}\nalert: {string.Join(" ", alerted?.Select(p => $"{p.Key}={p.Value}") ?? [])}\n" +
            $"log --user: {log.Stdout}"));

        var context = s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(rset.Transactions, Is.GreaterThanOrEqualTo(600), rset.Summary);
            Assert.That(transactions, Is.GreaterThanOrEqualTo(1000), "bob made a thousand transactions and more\n" + junk.Summary);
            Assert.That(rset.Closing, Has.Some.StartsWith("421 4.7.0 Error: too many errors"), "MAIL+RSET loops are an error storm\n" + rset.Summary + context);
            Assert.That(junk.Closing, Has.Some.StartsWith("421 4.7.0 Error: too many errors"), "refused MAIL loops are an error storm\n" + junk.Summary);
            Assert.That(suspended, Does.Contain(bob.Uid), "bob is suspended automatically" + context);
            Assert.That(alerted?.GetValueOrDefault("SMTPI_REASON"), Does.Contain("transactions that relayed nothing"), "the reason says what bob did");
            Assert.That(long.Parse(bobRows, CultureInfo.InvariantCulture), Is.LessThan(transactions / 100), "not one row per transaction");
            // A row was ~1,160 bytes a transaction on disk before (WAL included): the WAL's few fixed commits stay far below.
            Assert.That(bytesAfter - bytesBefore, Is.LessThan(transactions * 300L), "the state directory grows by far less than a row per transaction");
            Assert.That(usedAfter - usedBefore, Is.LessThan(64 * 1024), "the database itself barely grows");
            Assert.That(lines, Is.LessThan(100), "a bounded number of log lines, not one per transaction");
            Assert.That(log.Stdout, Does.Contain("ended before DATA"), "`log` shows the tallied transactions\n" + log.Describe());
            Assert.That(users.Stdout, Does.Contain(bob.Name), users.Describe());
            foreach (var (label, dialog) in new[] { ("during MAIL+RSET", duringRset), ("during MAIL X-JUNK", duringJunk), ("after", after) })
            {
                Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), $"alice's message {label}\n" + dialog.Describe());
            }
        });
    }

    [Test]
    public async Task Over_State_MaxBytes_the_oldest_rows_are_pruned_an_alert_runs_the_last_days_quota_stays_and_mail_flows()
    {
        var alert = NewAlertFile();
        var config = Config(
            ("State.MaxBytes", 2 * 1024 * 1024),
            ("Smtp.ErrorDelayMilliseconds", 1),
            ("Suspension.UnsentLimit", 0),   // bob's flood is not suspended here: the alert file is the store's
            ("Limits.Users.smtpi-alice.MessagesPerDay", 5),
            ("Alerts.Command", AlertCommand(alert)));
        await using var s = await Scenario.StartAsync(config: config);
        var alice = TestUsers.Alice;
        var state = StateDirectory(s.RequireDaemon);
        Assert.That(await s.RequireDaemon.StopAsync(), Is.EqualTo(0), s.Describe());

        // History written as a long-running daemon would have: 20,000 old transactions (10 to 2 days ago, ~9 MB),
        // and alice's 3 deliveries of the last day, which her daily quota still needs.
        const long day = 864_000_000_000L;
        var now = DateTimeOffset.UtcNow.UtcTicks;
        var filler = new string('x', 300);
        await SqlAsync(s, state, $"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
            INSERT INTO transactions SELECT 'old' || i, {now - 10 * day} + i * {8 * day / 20000}, 4242, 'gone', 's@x', 1, 10,
                   '192.0.2.1:25', '192.0.2.1:25', '250 {filler}', 0, 'Delivered', NULL FROM n;
            INSERT INTO transactions VALUES
              ('recent1', {now - day / 12}, {alice.Uid}, '{alice.Name}', 'a@x', 1, 10, '192.0.2.1:25', '192.0.2.1:25', '250 ok', 0, 'Delivered', NULL),
              ('recent2', {now - day / 12}, {alice.Uid}, '{alice.Name}', 'a@x', 1, 10, '192.0.2.1:25', '192.0.2.1:25', '250 ok', 0, 'Delivered', NULL),
              ('recent3', {now - day / 12}, {alice.Uid}, '{alice.Name}', 'a@x', 1, 10, '192.0.2.1:25', '192.0.2.1:25', '250 ok', 0, 'Delivered', NULL);
            """);
        var usedBefore = await UsedBytesAsync(s, state);

        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        string Context() => "\n" + daemon.Transcript() + s.Describe();
        var flood = LoopAsync(s, TestUsers.Bob, "junk", 1500);
        var first = await SendAsync(s, alice, "first");
        var second = await SendAsync(s, alice, "second");
        var third = await SendAsync(s, alice, "third");
        await flood;
        var alerted = await WaitForAlertAsync(alert, TimeSpan.FromSeconds(20));
        var pruned = daemon.LogLines().FirstOrDefault(l => l.Message.Contains("State.MaxBytes", StringComparison.Ordinal));
        var usedAfter = await UsedBytesAsync(s, state);
        var remaining = await SqlAsync(s, state, "SELECT count(*) || ' old rows left, oldest ' || coalesce(min(started), 0) FROM transactions WHERE uid = 4242;");
        var oldestLeft = await SqlAsync(s, state, "SELECT coalesce(min(started), 0) FROM transactions WHERE uid = 4242;");
        var newestOld = await SqlAsync(s, state, "SELECT count(*) FROM transactions WHERE id = 'old20000';");
        var recent = await SqlAsync(s, state, "SELECT count(*) FROM transactions WHERE id LIKE 'recent%';");
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"used bytes {usedBefore} -> {usedAfter} (State.MaxBytes {2 * 1024 * 1024}); {remaining}; recent rows {recent}\n" +
            $"log: {pruned?.Raw}\nalert: {string.Join(" ", alerted?.Select(p => $"{p.Key}={p.Value}") ?? [])}"));

        Assert.Multiple(() =>
        {
            foreach (var (label, dialog) in new[] { ("first", first), ("second", second) })
            {
                Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), $"alice's {label} message\n" + dialog.Describe() + Context());
            }

            Assert.That(ReplyLine(third, "MAIL"), Is.EqualTo("451 4.7.1 daily message quota for user smtpi-alice exhausted (5/5); try later"),
                "the 3 deliveries of the last day were kept and still count\n" + third.Describe() + Context());
            Assert.That(new[] { first, second, third }.SelectMany(d => d.Replies).Select(r => r.Raw), Has.None.Contains("4.3.0"), "never 451 4.3.0");
            Assert.That(pruned?.Message, Is.Not.Null, "a log line names State.MaxBytes" + Context());
            Assert.That(alerted?.GetValueOrDefault("SMTPI_EVENT"), Is.EqualTo("store-pruned"), "the alert command ran" + Context());
            Assert.That(usedAfter, Is.LessThanOrEqualTo(2 * 1024 * 1024), "the store is back under State.MaxBytes");
            Assert.That(long.Parse(oldestLeft, CultureInfo.InvariantCulture), Is.GreaterThan(now - 9 * day), "the oldest rows went first");
            Assert.That(newestOld, Is.EqualTo("1"), "the newest of the old rows is still there (oldest first, not everything)");
            Assert.That(recent, Is.EqualTo("3"), "the last day's deliveries are kept");
        });
    }

    private sealed record LoopResult(long Transactions, IReadOnlyList<string> Closing, string Summary);

    private static async Task<LoopResult> LoopAsync(Scenario s, TestUser user, string mode, int transactions)
    {
        var run = await s.Ns.RunAsUserAsync(user, Requirements.Python,
            ["-I", s.Dir.PathOf("junk_loop.py"), Mx.Split(':')[0], "25", "--mode", mode, "--connections", "4", "--transactions", transactions.ToString(CultureInfo.InvariantCulture), "--seconds", "60"],
            TimeSpan.FromSeconds(120));
        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "junk_loop.py printed no result\n" + run.Describe() + s.Describe());
        var json = JsonNode.Parse(line!)!;
        return new LoopResult(
            json["transactions"]!.GetValue<long>(),
            [.. json["closing"]!.AsArray().Select(n => n!.GetValue<string>())],
            line!);
    }

    /// <summary>
    /// An admin verb of the real binary, as root in the namespace, without the test run's own SMTPI_* variables (the daemon
    /// reads SMTPI_* as configuration overrides, and SMTPI_KEEP_TEST_USERS is not one).
    /// </summary>
    private static Task<ProcessResult> CliAsync(NetworkNamespace ns, DaemonProcess daemon, params string[] arguments) =>
        ns.RunAsync("/usr/bin/env", ["-u", "SMTPI_KEEP_TEST_USERS", DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, .. arguments, "--config", daemon.ConfigPath], TimeSpan.FromSeconds(60));

    private static long DirectoryBytes(string directory) => Directory.GetFiles(directory).Sum(f => new FileInfo(f).Length);

    private static async Task<long> UsedBytesAsync(Scenario s, string state) =>
        long.Parse(await SqlAsync(s, state, "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size();"), CultureInfo.InvariantCulture);

    /// <summary>Runs SQL on state.db with the sqlite3 shell (as root; the daemon may be running: WAL readers do not block it).</summary>
    private static async Task<string> SqlAsync(Scenario s, string state, string sql)
    {
        var result = await s.Ns.RunAsync("sqlite3", ["-cmd", ".timeout 5000", Path.Combine(state, "state.db"), sql], TimeSpan.FromSeconds(60));
        Assert.That(result.Succeeded, Is.True, result.Describe());
        return result.Stdout.Trim();
    }
}
