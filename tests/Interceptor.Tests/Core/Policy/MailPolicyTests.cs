using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

public class MailPolicyTests
{
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private MemoryStore _store = null!;
    private RecordingKernel _kernel = null!;
    private SuspensionRegistry _suspensions = null!;
    private MailPolicy _policy = null!;

    [SetUp]
    public void Create()
    {
        _store = new MemoryStore();
        _kernel = new RecordingKernel();
        _suspensions = new SuspensionRegistry(_store, _kernel, _kernel);
        var limits = new LimitsOptions { Default = new QuotaLimits { MessagesPerHour = 2 }.Or(QuotaLimits.Defaults) };
        var rules = new AutoSuspensionRules(new SuspensionOptions { RefusalLimit = 2, FailureMinimum = 2, FailureRatioPercent = 100 }, _clock);
        _policy = new MailPolicy(limits, new QuotaLedger(_clock), rules, _suspensions, _store, _clock, NullLogger.Instance);
    }

    [TearDown]
    public async Task Dispose() => await _store.DisposeAsync();

    private static TransactionEvent Event(string id, TransactionOutcome outcome, int recipients = 1) =>
        new(id, DateTimeOffset.UnixEpoch, 1001, "alice", "a@b", recipients, 10, "203.0.113.5:25", "203.0.113.5:25", "250 ok", TimeSpan.Zero) { Outcome = outcome };

    private async Task<MessageTicket> SendAsync(string id, TransactionOutcome outcome)
    {
        var (ticket, refusal) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        Assert.That(refusal, Is.Null);
        Assert.That(await _policy.ReserveRecipientAsync(ticket!, CancellationToken.None), Is.Null);
        Assert.That(await _policy.BeginDataAsync(ticket!, Event(id, TransactionOutcome.Pending), CancellationToken.None), Is.Null);
        await _policy.FinishAsync(ticket!, Event(id, outcome), CancellationToken.None);
        return ticket!;
    }

    [Test]
    public async Task A_transaction_is_on_disk_as_pending_before_data_then_with_its_outcome()
    {
        await SendAsync("t1", TransactionOutcome.Delivered);

        Assert.That(_store.TransactionWrites.Select(t => (t.Id, t.Outcome)), Is.EqualTo(new[] { ("t1", TransactionOutcome.Pending), ("t1", TransactionOutcome.Delivered) }));
    }

    [Test]
    public async Task A_store_that_cannot_be_written_refuses_the_data_with_451()
    {
        var (ticket, _) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        _store.Broken = true;

        var refusal = await _policy.BeginDataAsync(ticket!, Event("t1", TransactionOutcome.Pending), CancellationToken.None);

        Assert.That(refusal!.ToWire(), Does.StartWith("451 4.3.0 accounting store unavailable"));
    }

    [Test]
    public async Task The_outcome_does_not_hold_up_the_session_and_its_failure_is_logged()
    {
        var logger = new RecordingLogger();
        var rules = new AutoSuspensionRules(new SuspensionOptions(), _clock);
        _policy = new MailPolicy(new LimitsOptions(), new QuotaLedger(_clock), rules, _suspensions, _store, _clock, logger);
        _store.HeldOutcomes = new TaskCompletionSource();

        var finished = SendAsync("t1", TransactionOutcome.Delivered);

        Assert.That(await Task.WhenAny(finished, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(finished), "FinishAsync waited for the outcome's commit");
        await finished;
        Assert.That(logger.Errors, Is.Empty);
        _store.HeldOutcomes.SetException(new StoreUnavailableException("state.db: disk I/O error"));
        Assert.That(logger.Errors, Is.EqualTo(new[] { "could not record transaction t1 of uid=1001 user=alice: state.db: disk I/O error" }));
    }

    [Test]
    public async Task A_burst_of_quota_refusals_suspends_the_user_in_the_store_the_kernel_and_the_alert()
    {
        await SendAsync("t1", TransactionOutcome.Delivered);
        await SendAsync("t2", TransactionOutcome.Delivered);
        var (_, first) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        var (_, second) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);

        Assert.That(first!.Code, Is.EqualTo(451));
        Assert.That(second!.Code, Is.EqualTo(451));
        Assert.That(_suspensions.IsSuspended(1001, out var suspension), Is.True);
        Assert.That(suspension!.Source, Is.EqualTo(SuspensionSource.Automatic));
        Assert.That(_store.Suspensions.Select(s => s.Uid), Is.EqualTo(new[] { 1001u }));
        Assert.That(_kernel.Suspended, Is.EqualTo(new[] { 1001u }));
        Assert.That(_kernel.Alerts.Single().Counts["SMTPI_MESSAGES_HOUR"], Is.EqualTo("2"));
        Assert.That(_store.Refusals.Select(r => r.Kind), Is.EqualTo(new[] { RefusalKind.MessagesPerHour, RefusalKind.MessagesPerHour }));
    }

    [Test]
    public async Task A_suspended_user_is_refused_at_connect_and_at_mail()
    {
        await _suspensions.SuspendAsync(new Suspension(1001, "alice", "spam run", _clock.Now, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);

        var atConnect = await _policy.OpenConnectionAsync(1001, "alice", CancellationToken.None);
        var (_, atMail) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);

        Assert.That(atConnect!.ToWire(), Does.StartWith("554 5.7.1 user alice is suspended from sending mail: spam run"));
        Assert.That(atMail!.ToWire(), Does.StartWith("550 5.7.1 user alice is suspended"));
    }

    [Test]
    public async Task Messages_refused_after_data_for_what_the_client_sent_count_towards_the_unsent_limit()
    {
        // A loop of messages each refused at the final dot (bare CR, NUL, a folded first line…) relays nothing, like a
        // loop of refused MAIL commands: it must reach Suspension.UnsentLimit although each has its Pending row.
        var rules = new AutoSuspensionRules(new SuspensionOptions { RefusalLimit = 0, FailureRatioPercent = 0, UnsentLimit = 2 }, _clock);
        _policy = new MailPolicy(new LimitsOptions(), new QuotaLedger(_clock), rules, _suspensions, _store, _clock, NullLogger.Instance);
        foreach (var id in new[] { "t1", "t2" })
        {
            var (ticket, _) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
            Assert.That(await _policy.BeginDataAsync(ticket!, Event(id, TransactionOutcome.Pending), CancellationToken.None), Is.Null);
            Assert.That(_suspensions.IsSuspended(1001, out _), Is.False, "not before the limit");
            await _policy.FinishAsync(ticket!, Event(id, TransactionOutcome.Refused) with { Unsent = UnsentKind.RefusedAtData }, CancellationToken.None);
        }

        Assert.That(_suspensions.IsSuspended(1001, out var suspension), Is.True);
        Assert.That(suspension!.Reason, Does.Contain("refused at DATA"));
    }

    [Test]
    public async Task Messages_refused_for_their_content_count_toward_the_refusal_limit_like_quota_refusals()
    {
        // Issue 16: spam refused by the scan stage suspends a site as hammering its quotas does (RefusalLimit 2 here);
        // the unsent rule is off, so only the refusal rule can suspend.
        var rules = new AutoSuspensionRules(new SuspensionOptions { RefusalLimit = 2, FailureRatioPercent = 0, UnsentLimit = 0 }, _clock);
        _policy = new MailPolicy(new LimitsOptions(), new QuotaLedger(_clock), rules, _suspensions, _store, _clock, NullLogger.Instance);
        foreach (var (id, content) in new[] { ("t1", false), ("t2", true), ("t3", true) })
        {
            var (ticket, _) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
            Assert.That(await _policy.BeginDataAsync(ticket!, Event(id, TransactionOutcome.Pending), CancellationToken.None), Is.Null);
            Assert.That(_suspensions.IsSuspended(1001, out _), Is.False, "not before the limit");
            await _policy.FinishAsync(ticket!, Event(id, TransactionOutcome.Rejected) with { Unsent = UnsentKind.RefusedAtData, ContentRefused = content }, CancellationToken.None);
        }

        Assert.That(_suspensions.IsSuspended(1001, out var suspension), Is.True);
        Assert.That(suspension!.Reason, Does.Contain("2 quota refusals"));
    }

    [Test]
    public async Task Upstream_rejections_above_the_ratio_suspend_the_user()
    {
        await SendAsync("t1", TransactionOutcome.Rejected);
        Assert.That(_suspensions.IsSuspended(1001, out _), Is.False);

        await SendAsync("t2", TransactionOutcome.Rejected);

        Assert.That(_suspensions.IsSuspended(1001, out var suspension), Is.True);
        Assert.That(suspension!.Reason, Does.Contain("2 of 2 messages rejected or deferred upstream"));
    }

    [Test]
    public async Task A_declared_size_over_the_limit_is_refused_naming_the_user()
    {
        var (_, refusal) = await _policy.StartMessageAsync(1001, "alice", 30L * 1024 * 1024, CancellationToken.None);

        Assert.That(refusal!.ToWire(), Does.StartWith("552 5.3.4 message size 31457280 exceeds the limit of 26214400 bytes for user alice"));
    }

    [Test]
    public async Task Unsuspending_takes_the_user_out_everywhere()
    {
        await _suspensions.SuspendAsync(new Suspension(1001, "alice", "x", _clock.Now, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);

        Assert.That(await _suspensions.UnsuspendAsync(1001, CancellationToken.None), Is.True);
        Assert.That(_suspensions.IsSuspended(1001, out _), Is.False);
        Assert.That(_store.Suspensions, Is.Empty);
        Assert.That(_kernel.Suspended, Is.Empty);
    }

    [Test]
    public async Task A_held_message_counts_toward_the_quotas_so_held_mail_is_bounded_by_them()
    {
        // MessagesPerHour is 2 here. Held messages used to give their reservation back: a user whose mail was held could
        // send without end, the hold store taking it all.
        await SendAsync("t1", TransactionOutcome.Held);
        await SendAsync("t2", TransactionOutcome.Held);

        var (_, refusal) = await _policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(refusal?.ToWire(), Does.Contain("alice").And.StartWith("4"), "the hourly quota is spent by the two held messages");
            Assert.That(TransactionEvent.CountsAsSent(TransactionOutcome.Held), Is.True, "and so after a restart, rebuilt from the store");
        });
    }

    [Test]
    public async Task Messages_failing_on_our_side_are_refused_at_mail_for_a_while_and_count_toward_no_quota_or_suspension()
    {
        // A full disk or a wedged scanner that alice can cause at will: uncounted (bob may be the one it hits), so without a
        // breaker her MAIL and RCPTs reached an MX without end.
        var policy = new PolicyFixture(
            suspension: new SuspensionOptions { LocalFailureLimit = 2, UnsentLimit = 1, RefusalLimit = 1, FailureMinimum = 1, FailureRatioPercent = 1 },
            time: _clock);
        async Task<MessageTicket?> FailHereAsync(string id)
        {
            var (ticket, refusal) = await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
            if (ticket is null)
            {
                Assert.That(refusal, Is.Not.Null);
                return null;
            }

            Assert.That(await policy.Policy.ReserveRecipientAsync(ticket, CancellationToken.None), Is.Null);
            Assert.That(await policy.Policy.BeginDataAsync(ticket, Event(id, TransactionOutcome.Pending), CancellationToken.None), Is.Null);
            await policy.Policy.FinishAsync(ticket, Event(id, TransactionOutcome.Refused) with { Stages = OwnStages.Failed }, CancellationToken.None);
            return ticket;
        }

        Assert.That(await FailHereAsync("t1"), Is.Not.Null);
        Assert.That(await FailHereAsync("t2"), Is.Not.Null);

        var (refused, reply) = await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        var (bobs, _) = await policy.Policy.StartMessageAsync(1002, "bob", null, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(refused, Is.Null);
            Assert.That(reply?.ToWire(), Does.StartWith("451 4.3.0 messages of user alice keep failing on our side (2 within the last 10 min"));
            Assert.That(bobs, Is.Not.Null, "bob is not held back by alice's failures");
            Assert.That(policy.Suspensions.All, Is.Empty, "never a suspension, whatever the limits");
            Assert.That(policy.Policy.Ledger.Usage(1001), Is.EqualTo((0, 0, 0, 0)), "nothing charged to her quotas");
            Assert.That(policy.Store.Tallies.Select(t => t.Kind), Is.EqualTo(new[] { "Refusal.LocalFailures" }), "the refusal is counted, as connection-cap refusals are");
        });

        _clock.Advance(TimeSpan.FromSeconds(60));
        var (trial, _) = await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        var (during, waiting) = await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None);
        Assert.That(trial, Is.Not.Null, "after the cool-down, one is tried");
        Assert.That(during, Is.Null);
        Assert.That(waiting?.Text, Does.Contain("one message is being tried"));

        Assert.That(await policy.Policy.ReserveRecipientAsync(trial!, CancellationToken.None), Is.Null);
        Assert.That(await policy.Policy.BeginDataAsync(trial!, Event("t3", TransactionOutcome.Pending), CancellationToken.None), Is.Null);
        await policy.Policy.FinishAsync(trial!, Event("t3", TransactionOutcome.Delivered) with { Stages = OwnStages.Passed }, CancellationToken.None);

        Assert.That((await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None)).Ticket, Is.Not.Null);
        Assert.That((await policy.Policy.StartMessageAsync(1001, "alice", null, CancellationToken.None)).Ticket, Is.Not.Null, "the trial got through our stages: no longer one at a time");
    }
}
