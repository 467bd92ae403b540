using System.Text.Json;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Control;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>The verbs inside the daemon, on the real SQLite store in a temporary directory, a recording kernel set and a fake nft.</summary>
[TestFixture]
public sealed class AdminServiceTests
{
    private static T Data<T>(ControlResponse response)
    {
        Assert.That(response.Ok, Is.True, () => $"{response.ErrorKind}: {response.Error}");
        return response.Data!.Value.Deserialize<T>(ControlJson.Options)!;
    }

    [Test]
    public async Task Block_suspends_in_memory_in_the_store_and_in_the_kernel_and_runs_the_alert()
    {
        await using var f = new AdminFixture();
        f.Ledger.AddDelivered(1001, AdminFixture.Now - TimeSpan.FromMinutes(5), 3);

        var block = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "block", User = "alice", Reason = "spam wave" }));
        var stored = await f.StoredSuspensionsAsync();

        Assert.Multiple(() =>
        {
            Assert.That(block.Message, Is.EqualTo("alice (uid 1001) suspended: spam wave"));
            Assert.That(block.Changed, Is.True);
            Assert.That(block.Suspension!.Source, Is.EqualTo(SuspensionSource.Admin));
            Assert.That(f.Suspensions.IsSuspended(1001, out _), Is.True);
            Assert.That(stored.Single().Reason, Is.EqualTo("spam wave"));
            Assert.That(f.Kernel.Calls, Is.EqualTo(new[] { "suspend 1001", "alert 1001 Admin" }));
            Assert.That(f.Kernel.AlertCounts[0]["SMTPI_MESSAGES_HOUR"], Is.EqualTo("1"));
            Assert.That(f.Kernel.AlertCounts[0]["SMTPI_RECIPIENTS_DAY"], Is.EqualTo("3"));
        });
    }

    [Test]
    public async Task Block_by_numeric_uid_names_the_user()
    {
        await using var f = new AdminFixture();

        var block = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "block", User = "1002", Reason = "r" }));

        Assert.That(block.Message, Is.EqualTo("bob (uid 1002) suspended: r"));
    }

    [Test]
    public async Task Blocking_twice_changes_nothing_and_says_since_when()
    {
        await using var f = new AdminFixture();
        await f.HandleAsync(new ControlRequest { Verb = "block", User = "alice", Reason = "first" });

        var again = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "block", User = "alice", Reason = "second" }));

        Assert.Multiple(() =>
        {
            Assert.That(again.Changed, Is.False);
            Assert.That(again.Message, Is.EqualTo("alice (uid 1001) was already suspended since 2030-05-01 12:00:00Z (admin): first"));
            Assert.That(f.Kernel.Calls.Count(c => c.StartsWith("alert", StringComparison.Ordinal)), Is.EqualTo(1));
        });
    }

    [TestCase("root", 0u)]
    [TestCase("smtpi", 995u)]
    [TestCase("0", 0u)]
    public async Task Root_and_exempt_users_cannot_be_blocked(string user, uint uid)
    {
        await using var f = new AdminFixture();

        var response = await f.HandleAsync(new ControlRequest { Verb = "block", User = user, Reason = "x" });

        Assert.Multiple(() =>
        {
            Assert.That(response.Ok, Is.False);
            Assert.That(response.ErrorKind, Is.EqualTo(ControlErrors.BadRequest));
            Assert.That(response.Error, Does.Contain($"(uid {uid}) is exempt from interception"));
            Assert.That(f.Kernel.Calls, Is.Empty);
        });
    }

    [Test]
    public async Task An_unknown_user_is_a_bad_request()
    {
        await using var f = new AdminFixture();

        var response = await f.HandleAsync(new ControlRequest { Verb = "block", User = "mallory", Reason = "x" });

        Assert.That(response.ErrorKind, Is.EqualTo(ControlErrors.BadRequest));
        Assert.That(response.Error, Does.StartWith("no such user \"mallory\""));
    }

    [Test]
    public async Task A_store_failure_during_block_is_reported_as_failed_and_still_refuses_in_memory()
    {
        await using var f = new AdminFixture();
        await f.BreakStoreAsync();

        var response = await f.HandleAsync(new ControlRequest { Verb = "block", User = "alice", Reason = "x" });

        Assert.Multiple(() =>
        {
            Assert.That(response.ErrorKind, Is.EqualTo(ControlErrors.Failed));
            Assert.That(response.Error, Does.Contain("alice (uid 1001) is refused by the daemon from now on, but the suspension is incomplete"));
            Assert.That(f.Suspensions.IsSuspended(1001, out _), Is.True);
        });
    }

    [Test]
    public async Task Unblock_lifts_the_suspension_and_forgets_the_automatic_rule_history()
    {
        await using var f = new AdminFixture();
        await f.HandleAsync(new ControlRequest { Verb = "block", User = "alice", Reason = "x" });
        f.AutoSuspension.ObserveRefusal(1001, AdminFixture.Now);
        f.AutoSuspension.ObserveRefusal(1001, AdminFixture.Now);
        f.LocalFailures.Finished(1001, 0, OwnStages.Failed);
        Assert.That(f.LocalFailures.Admit(1001, "alice", out _), Is.Not.Null, "held back after a failure of ours");

        var unblock = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "unblock", User = "alice" }));
        var stored = await f.StoredSuspensionsAsync();

        Assert.Multiple(() =>
        {
            Assert.That(unblock.Message, Is.EqualTo("alice (uid 1001) unsuspended: port 25 is intercepted and relayed again"));
            Assert.That(unblock.Changed, Is.True);
            Assert.That(f.Suspensions.IsSuspended(1001, out _), Is.False);
            Assert.That(stored, Is.Empty);
            Assert.That(f.Kernel.Calls, Does.Contain("unsuspend 1001"));

            // Two refusals were forgotten: the rule (limit 3) needs three new ones to trip again.
            Assert.That(f.AutoSuspension.ObserveRefusal(1001, AdminFixture.Now), Is.Null);
            Assert.That(f.LocalFailures.Admit(1001, "alice", out _), Is.Null, "no longer held back at MAIL");
        });
    }

    [Test]
    public async Task Unblocking_a_user_who_is_not_suspended_says_so()
    {
        await using var f = new AdminFixture();

        var unblock = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "unblock", User = "bob" }));

        Assert.That(unblock.Changed, Is.False);
        Assert.That(unblock.Message, Is.EqualTo("bob (uid 1002) was not suspended"));
    }

    [Test]
    public async Task A_deleted_account_can_still_be_unblocked_by_its_recorded_name()
    {
        await using var f = new AdminFixture();
        await f.Suspensions.SuspendAsync(new Suspension(4000, "gone", "old", AdminFixture.Now, SuspensionSource.Automatic), new Dictionary<string, string>(), CancellationToken.None);

        var unblock = Data<BlockData>(await f.HandleAsync(new ControlRequest { Verb = "unblock", User = "gone" }));

        Assert.That(unblock.Message, Is.EqualTo("gone (uid 4000) unsuspended: port 25 is intercepted and relayed again"));
    }

    [Test]
    public async Task Log_lists_transactions_newest_first_filtered_by_user_and_time()
    {
        await using var f = new AdminFixture();
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("old", TimeSpan.FromHours(3), 1001, TransactionOutcome.Delivered), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a1", TimeSpan.FromMinutes(50), 1001, TransactionOutcome.Delivered), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a2", TimeSpan.FromMinutes(5), 1001, TransactionOutcome.Rejected), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("b1", TimeSpan.FromMinutes(1), 1002, TransactionOutcome.Delivered), default);

        var log = Data<LogData>(await f.HandleAsync(new ControlRequest { Verb = "log", User = "alice", Since = "1h" }));

        Assert.Multiple(() =>
        {
            Assert.That(log.Transactions.Select(t => t.Id), Is.EqualTo(new[] { "a2", "a1" }));
            Assert.That(log.Uid, Is.EqualTo(1001));
            Assert.That(log.Since, Is.EqualTo(AdminFixture.Now - TimeSpan.FromHours(1)));
            Assert.That(log.Limit, Is.EqualTo(AdminService.DefaultLogLimit));
            Assert.That(log.Transactions[0].Outcome, Is.EqualTo(TransactionOutcome.Rejected));
            Assert.That(log.Transactions[0].Reply, Is.EqualTo("550 5.7.1 spam"));
        });
    }

    [Test]
    public async Task Users_are_ordered_by_messages_sent_and_cut_at_the_limit()
    {
        await using var f = new AdminFixture();
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a1", TimeSpan.FromMinutes(10), 1001, TransactionOutcome.Delivered, recipients: 4), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("b1", TimeSpan.FromMinutes(10), 1002, TransactionOutcome.Delivered), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("b2", TimeSpan.FromMinutes(20), 1002, TransactionOutcome.Delivered), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("b3", TimeSpan.FromDays(2), 1002, TransactionOutcome.Delivered), default);

        var all = Data<UsersData>(await f.HandleAsync(new ControlRequest { Verb = "users" }));
        var top = Data<UsersData>(await f.HandleAsync(new ControlRequest { Verb = "users", Limit = 1, Since = "30m" }));

        Assert.Multiple(() =>
        {
            Assert.That(all.Users.Select(u => (u.User, u.Delivered)), Is.EqualTo(new[] { ("bob", 2L), ("alice", 1L) }));
            Assert.That(all.Users[1].Recipients, Is.EqualTo(4));
            Assert.That(top.Users.Select(u => u.User), Is.EqualTo(new[] { "bob" }));
        });
    }

    [Test]
    public async Task Users_and_log_count_tallied_transactions_and_refusals_as_the_stores_sql_adds_them_up()
    {
        await using var f = new AdminFixture();
        var at = AdminFixture.Now - TimeSpan.FromMinutes(3);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("b1", TimeSpan.FromMinutes(4), 1002, TransactionOutcome.Delivered), default);
        for (var i = 0; i < 3; i++)
        {
            f.Store.CountTally(TallyEntry.One(at.AddSeconds(i), 1001, "alice", TallyEntry.UnsentKindName(UnsentKind.Reset), "Refused", "250 2.0.0 reset"));
        }

        f.Store.CountTally(TallyEntry.One(at, 1001, "alice", TallyEntry.RefusalKindName(RefusalKind.Connections), "", "5/5"));
        await f.Store.RecordRefusalAsync(new PolicyRefusal(at, 1001, "alice", RefusalKind.MessagesPerHour, "200/200"), default);

        var users = Data<UsersData>(await f.HandleAsync(new ControlRequest { Verb = "users", Since = "1h" }));
        var log = Data<LogData>(await f.HandleAsync(new ControlRequest { Verb = "log", User = "alice" }));

        Assert.Multiple(() =>
        {
            // bob sent a message, so he comes first; alice's trouble is the tallies (3 refused) and refusals (1 + 1).
            Assert.That(users.Users.Select(u => (u.User, u.Delivered, u.Refused, u.PolicyRefusals)), Is.EqualTo(new[] { ("bob", 1L, 0L, 0L), ("alice", 0L, 3L, 2L) }));
            Assert.That(log.Transactions.Select(t => t.Id), Is.EquivalentTo(new[] { "tally×3", "tally×1" }));
            Assert.That(log.Transactions.Single(t => t.Id == "tally×3").Reply, Does.StartWith("3 transactions ended before DATA (Unsent.Reset, Refused)"));
        });
    }

    [Test]
    public async Task Status_reports_health_table_differences_and_per_user_windows()
    {
        await using var f = new AdminFixture();
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a1", TimeSpan.FromMinutes(10), 1001, TransactionOutcome.Delivered, recipients: 2), default);
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a2", TimeSpan.FromHours(5), 1001, TransactionOutcome.Deferred), default);
        await f.Store.RecordRefusalAsync(new PolicyRefusal(AdminFixture.Now - TimeSpan.FromMinutes(1), 1001, "alice", RefusalKind.MessagesPerHour, "200/200"), default);
        await f.HandleAsync(new ControlRequest { Verb = "block", User = "bob", Reason = "manual" });

        var status = Data<StatusData>(await f.HandleAsync(new ControlRequest { Verb = "status" }));

        Assert.Multiple(() =>
        {
            Assert.That(status.UptimeSeconds, Is.EqualTo((2 * 3600) + (13 * 60)));
            Assert.That(status.ActiveSessions, Is.EqualTo(3));
            Assert.That(status.OwnerLookup, Is.EqualTo("sock_diag"));
            Assert.That(status.Store.Path, Is.EqualTo(f.Database));
            Assert.That(status.Store.Healthy, Is.True);
            Assert.That(status.Store.Commits, Is.GreaterThan(0));
            Assert.That(status.Table.Matches, Is.False);
            Assert.That(status.Table.Differences, Is.EqualTo(new[] { "table inet smtp_interceptor does not exist", "table inet smtp_interceptor_guard does not exist" }));
            var alice = status.Users.Single(u => u.User == "alice");
            Assert.That(alice.LastHour, Is.EqualTo(new WindowCounts(1, 2, 0, 0, 0, 0, 1)));
            Assert.That(alice.LastDay, Is.EqualTo(new WindowCounts(1, 2, 0, 1, 0, 0, 1)));
            Assert.That(alice.Suspended, Is.False);
            var bob = status.Users.Single(u => u.User == "bob");
            Assert.That(bob.Suspended, Is.True);
            Assert.That(bob.LastDay, Is.EqualTo(WindowCounts.Zero));
            Assert.That(status.Suspended.Single().Reason, Is.EqualTo("manual"));
        });
    }

    [Test]
    public async Task Status_still_answers_when_the_store_and_nft_fail()
    {
        await using var f = new AdminFixture(nftScript: "echo 'Error: Operation not permitted' >&2; exit 1");
        await f.BreakStoreAsync();

        var status = Data<StatusData>(await f.HandleAsync(new ControlRequest { Verb = "status" }));

        Assert.Multiple(() =>
        {
            Assert.That(status.Store.Healthy, Is.False);
            Assert.That(status.Store.LastFailure, Does.Contain(f.Database).And.Contain("deleted"));
            Assert.That(status.Table.Matches, Is.False);
            Assert.That(status.Table.Differences.Single(), Does.StartWith("the table could not be read: ").And.Contains("Operation not permitted"));
        });
    }

    [Test]
    public async Task Limits_without_user_list_the_default_and_every_override()
    {
        await using var f = new AdminFixture(new InterceptorOptions
        {
            Limits = new LimitsOptions
            {
                Users = new Dictionary<string, QuotaLimits> { ["bob"] = new() { MessagesPerHour = 5 }, ["alice"] = new() { Connections = 2, MessageSizeBytes = 4096 } },
            },
        });

        var limits = Data<LimitsData>(await f.HandleAsync(new ControlRequest { Verb = "limits" }));

        Assert.Multiple(() =>
        {
            Assert.That(limits.Default, Is.EqualTo(LimitValues.Of(QuotaLimits.Defaults)));
            Assert.That(limits.Overrides.Select(o => o.User), Is.EqualTo(new[] { "alice", "bob" }));
            Assert.That(limits.Overrides[0].Overridden, Is.EqualTo(new[] { "connections", "messageSizeBytes" }));
            Assert.That(limits.Overrides[1].Limits.MessagesPerHour, Is.EqualTo(5));
            Assert.That(limits.Overrides[1].Limits.MessagesPerDay, Is.EqualTo(1000));
            Assert.That(limits.User, Is.Null);
        });
    }

    [Test]
    public async Task Limits_of_a_user_show_effective_values_and_live_usage()
    {
        await using var f = new AdminFixture(new InterceptorOptions
        {
            Limits = new LimitsOptions { Users = new Dictionary<string, QuotaLimits> { ["alice"] = new() { MessagesPerHour = 7 } } },
        });
        f.Ledger.AddDelivered(1001, AdminFixture.Now - TimeSpan.FromMinutes(30), 2);
        f.Ledger.AddDelivered(1001, AdminFixture.Now - TimeSpan.FromHours(3), 5);
        Assert.That(f.Ledger.TryOpenConnection(1001, QuotaLimits.Defaults, out _), Is.True);

        var limits = Data<LimitsData>(await f.HandleAsync(new ControlRequest { Verb = "limits", User = "alice" }));

        Assert.Multiple(() =>
        {
            var alice = limits.User!;
            Assert.That(alice.Source, Is.EqualTo("Limits.Users.alice"));
            Assert.That(alice.Uid, Is.EqualTo(1001));
            Assert.That(alice.Limits.MessagesPerHour, Is.EqualTo(7));
            Assert.That(alice.Overridden, Is.EqualTo(new[] { "messagesPerHour" }));
            Assert.That(alice.Usage, Is.EqualTo(new UsageValues(1, 2, 2, 7, 1)));
        });
    }

    [Test]
    public async Task Limits_of_a_configured_name_without_an_account_have_no_usage()
    {
        await using var f = new AdminFixture(new InterceptorOptions
        {
            Limits = new LimitsOptions { Users = new Dictionary<string, QuotaLimits> { ["future"] = new() { Connections = 1 } } },
        });

        var limits = Data<LimitsData>(await f.HandleAsync(new ControlRequest { Verb = "limits", User = "future" }));

        Assert.That(limits.User!.Uid, Is.Null);
        Assert.That(limits.User.Usage, Is.Null);
        Assert.That(limits.User.Limits.Connections, Is.EqualTo(1));
    }

    [Test]
    public async Task Data_is_camel_case_json_with_enum_names()
    {
        await using var f = new AdminFixture();
        await f.Store.RecordTransactionAsync(AdminFixture.Transaction("a1", TimeSpan.FromMinutes(1), 1001, TransactionOutcome.Delivered), default);

        var response = await f.HandleAsync(new ControlRequest { Verb = "log" });
        var line = System.Text.Encoding.UTF8.GetString(response.ToLine());

        Assert.Multiple(() =>
        {
            Assert.That(line, Does.StartWith("{\"ok\":true,\"verb\":\"log\",\"data\":{\"since\":\"2030-04-24T12:00:00+00:00\""));
            Assert.That(line, Does.Contain("\"outcome\":\"delivered\""));
            Assert.That(line, Does.Contain("\"from\":\"1001@client.test\""));
            Assert.That(line, Does.EndWith("\"error\":null,\"errorKind\":null}\n"));
        });
    }
}
