using System.Net;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Issue 13.1: the transaction is the only thing that finishes itself, once, whatever the outcome: stored, logged, counted.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class RelayTransactionTests
{
    private static readonly ConnectionOrigin Origin = new(RelayHarness.Uid, RelayHarness.User, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 25));

    private static (RelayTransaction Transaction, RecordingRecorder Recorder, PolicyFixture Policy, MessageTicket Ticket) Start()
    {
        var recorder = new RecordingRecorder();
        var policy = new PolicyFixture(new LimitsOptions());
        var link = new UpstreamLink(new UpstreamLease(new UnusedRoute()), Origin, recorder, NullLogger.Instance);
        var sink = new TransactionSink(Origin, recorder, policy.Policy, link);
        var ticket = policy.Policy.StartMessageAsync(Origin.Uid, Origin.User, null, CancellationToken.None).Result.Ticket!;
        var (mail, _) = EnvelopeCommand.Parse("FROM:<alice@customer.test>", "FROM:", allowNullPath: true);
        return (new RelayTransaction(mail!, ticket, sink), recorder, policy, ticket);
    }

    [Test]
    public async Task It_finishes_once_however_often_it_is_told()
    {
        var (transaction, recorder, policy, _) = Start();

        await transaction.FinishAsync("aborted: RSET", TransactionOutcome.Refused, UnsentKind.Reset, CancellationToken.None);
        await transaction.FinishAsync("aborted: the client left before finishing the transaction", TransactionOutcome.Refused, UnsentKind.ClientLeft, CancellationToken.None);

        Assert.That(transaction.Finished, Is.True);
        Assert.That(recorder.Events.Select(e => e.Reply), Is.EqualTo(new[] { "aborted: RSET" }));
        Assert.That(policy.Store.Tallies, Has.Count.EqualTo(1), "stored (tallied) once too");
    }

    [Test]
    public void Two_transactions_have_distinct_version_7_ids_of_their_start()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var (first, second) = (Start().Transaction, Start().Transaction);
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        Assert.Multiple(() =>
        {
            Assert.That(first.Id, Is.Not.EqualTo(second.Id));
            Assert.That(Guid.ParseExact(first.Id, "N").Version, Is.EqualTo(7));
            Assert.That(Convert.ToInt64(first.Id[..12], 16), Is.InRange(before, after), "the id's time is the transaction's start");
        });
    }

    [Test]
    public async Task The_event_names_the_client_the_upstream_and_the_envelope()
    {
        var (transaction, recorder, _, _) = Start();
        transaction.RecipientAnswered("bob@example.net", new SmtpReply(250, "2.1.5", "Ok"));

        await transaction.FinishAsync("aborted: RSET", TransactionOutcome.Refused, UnsentKind.Reset, CancellationToken.None);

        var finished = recorder.Events.Single();
        Assert.Multiple(() =>
        {
            Assert.That(finished.Id, Is.EqualTo(transaction.Id));
            Assert.That((finished.Uid, finished.User, finished.Sender), Is.EqualTo((RelayHarness.Uid, RelayHarness.User, "alice@customer.test")));
            Assert.That(finished.RecipientCount, Is.EqualTo(1));
            Assert.That(finished.OriginalDestination, Is.EqualTo("192.0.2.1:25"));
            Assert.That(finished.Unsent, Is.EqualTo(UnsentKind.Reset));
        });
    }

    [Test]
    public async Task Every_recipient_refused_upstream_is_the_upstreams_verdict_not_an_abandoned_transaction()
    {
        var (transaction, recorder, _, _) = Start();
        transaction.RecipientAnswered("nobody@example.net", new SmtpReply(550, "5.1.1", "no such user"));

        await transaction.FinishAsync("aborted: RSET", TransactionOutcome.Refused, UnsentKind.Reset, CancellationToken.None);

        var finished = recorder.Events.Single();
        Assert.That(finished.Outcome, Is.EqualTo(TransactionOutcome.Rejected));
        Assert.That(finished.Unsent, Is.EqualTo(UnsentKind.UpstreamRefused));
        Assert.That(finished.Reply, Is.EqualTo("550 5.1.1 no such user (every recipient refused upstream)"));
    }

    [Test]
    public async Task A_refused_recipient_gives_back_its_quota_and_an_accepted_one_counts()
    {
        var (transaction, _, policy, ticket) = Start();
        Assert.That(await policy.Policy.ReserveRecipientAsync(ticket, CancellationToken.None), Is.Null);
        Assert.That(await policy.Policy.ReserveRecipientAsync(ticket, CancellationToken.None), Is.Null);

        transaction.RecipientAnswered("bob@example.net", new SmtpReply(250, "2.1.5", "Ok"));
        transaction.RecipientAnswered("nobody@example.net", new SmtpReply(550, "5.1.1", "no such user"));

        Assert.That(transaction.Recipients, Is.EqualTo(new[] { "bob@example.net" }));
        Assert.That(ticket.ReservedRecipients, Is.EqualTo(1));
    }

    [Test]
    public async Task Data_does_not_start_when_the_pending_record_cannot_be_written()
    {
        var (transaction, recorder, policy, _) = Start();
        transaction.RecipientAnswered("bob@example.net", new SmtpReply(250, "2.1.5", "Ok"));
        policy.Store.Broken = true;

        var refusal = await transaction.BeginDataAsync(CancellationToken.None);
        await transaction.FinishAsync("not relayed: " + refusal, TransactionOutcome.Refused, UnsentKind.RefusedAtData, CancellationToken.None);

        Assert.That(refusal, Is.Not.Null);
        Assert.That(refusal!.Code, Is.EqualTo(451));
        Assert.That(transaction.DataStarted, Is.False);
        Assert.That(recorder.Events.Single().Unsent, Is.EqualTo(UnsentKind.RefusedAtData));
    }

    [TestCase(TransactionOutcome.Refused, true, UnsentKind.AbandonedInData)]
    [TestCase(TransactionOutcome.Refused, false, null)]
    [TestCase(TransactionOutcome.Deferred, false, null)]
    [TestCase(TransactionOutcome.Delivered, false, null)]
    public async Task A_transaction_the_client_abandoned_during_data_counts_as_unsent_others_ended_during_data_do_not(
        TransactionOutcome outcome, bool abandoned, UnsentKind? expected)
    {
        // MAIL, RCPT, DATA and a hang-up (or a stall) in a loop: the upstream drops each partial message, and before this
        // nothing counted it (no quota, no Suspension.UnsentLimit), so a client could probe recipients at an MX without end.
        // Refused without the client's doing (a spool error of ours, a shutdown) is not hers to count.
        var (transaction, recorder, _, _) = Start();
        transaction.RecipientAnswered("bob@example.net", new SmtpReply(250, "2.1.5", "Ok"));
        Assert.That(await transaction.BeginDataAsync(CancellationToken.None), Is.Null);
        transaction.AbandonedByClient = abandoned;

        await transaction.FinishAsync("451 4.4.2 connection closed during DATA", outcome, UnsentKind.ClientLeft, CancellationToken.None);

        Assert.That(recorder.Events.Single().Unsent, Is.EqualTo(expected));
    }

    [Test]
    public async Task A_transaction_a_stage_of_ours_failed_counts_toward_nothing()
    {
        // StageDecision.Defer (a scan that timed out, a hold or spool the disk could not keep): the scanner is shared and
        // any local user can wedge it or fill the disk, so whose doing it was cannot be known; a neighbour must not get
        // her charged. (A loop of them is bounded by Suspension.LocalFailureLimit instead: LocalFailureBreakerTests.)
        var (transaction, recorder, _, _) = Start();
        transaction.RecipientAnswered("bob@example.net", new SmtpReply(250, "2.1.5", "Ok"));
        Assert.That(await transaction.BeginDataAsync(CancellationToken.None), Is.Null);
        transaction.FailedHere = true;

        await transaction.FinishAsync("451 4.7.0 the message could not be scanned for spam", TransactionOutcome.Refused, UnsentKind.ClientLeft, CancellationToken.None);

        Assert.That(recorder.Events.Single().Unsent, Is.Null);
        Assert.That(recorder.Events.Single().Stages, Is.EqualTo(OwnStages.Failed), "what the breaker at MAIL counts");
    }

    [Test]
    public async Task A_store_that_cannot_keep_the_pending_row_is_our_failure_not_the_clients()
    {
        // Its disk is anyone's to fill: before, the 451 counted as RefusedAtData toward bob's Suspension.UnsentLimit.
        await using var upstream = new ScriptedUpstream();
        var options = RelayHarness.Options with { Suspension = new SuspensionOptions { UnsentLimit = 1 } };
        await using var session = MemorySession.Start(upstream.EndPoint, options: options);
        await session.GreetAsync();
        Assert.That((await session.CommandAsync("MAIL FROM:<alice@customer.test>")).Code, Is.EqualTo(250));
        Assert.That((await session.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));
        session.Policy.Store.Broken = true;

        var data = await session.CommandAsync("DATA");

        Assert.That(data.Text, Does.StartWith("451 4.3.0 accounting store unavailable"));
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded");
        var recorded = session.Recorder.Events.Single();
        Assert.Multiple(() =>
        {
            Assert.That(recorded.Stages, Is.EqualTo(OwnStages.Failed));
            Assert.That(recorded.Unsent, Is.Null, "toward no suspension rule");
            Assert.That(session.Policy.Store.Tallies.Select(t => t.Kind), Is.EqualTo(new[] { "Unsent.RefusedAtData" }), "still tallied");
            Assert.That(session.Policy.Suspensions.All, Is.Empty, "an unsent limit of 1 would have suspended her");
        });
    }

    /// <summary>The bug: this outcome was stored but never logged nor counted (the recorder never heard of it).</summary>
    [Test]
    public async Task A_mail_refused_for_a_parameter_the_upstream_cannot_honour_is_stored_logged_and_counted()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Extensions = ["PIPELINING", "ENHANCEDSTATUSCODES"] });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var reply = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test> BODY=8BITMIME");

        Assert.That(reply.Text, Does.StartWith("554 5.6.3 "));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count == 1, "the recorded (logged and counted) transaction");
        var recorded = relay.Recorder.Events.Single();
        Assert.Multiple(() =>
        {
            Assert.That(recorded.Unsent, Is.EqualTo(UnsentKind.MailRefused));
            Assert.That(recorded.Outcome, Is.EqualTo(TransactionOutcome.Refused));
            Assert.That(recorded.Reply, Does.StartWith("not relayed: 554 5.6.3 "));
            Assert.That(relay.Policy.Store.Tallies.Select(t => t.Kind), Is.EqualTo(new[] { TallyEntry.UnsentKindName(UnsentKind.MailRefused) }), "stored (tallied) as before");
        });
    }

    [Test]
    public async Task Quit_in_the_middle_of_a_transaction_finishes_it_as_abandoned()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint);
        await session.GreetAsync();
        await session.CommandAsync("MAIL FROM:<alice@customer.test>");
        await session.CommandAsync("RCPT TO:<bob@example.net>");

        var bye = await session.CommandAsync("QUIT");

        Assert.That(bye.Code, Is.EqualTo(221));
        await Wait.UntilAsync(() => session.Recorder.Events.Count == 1, "the recorded transaction");
        Assert.That(session.Recorder.Events.Single().Reply, Is.EqualTo("aborted: the client left before finishing the transaction"));
        Assert.That(session.Recorder.Events.Single().Unsent, Is.EqualTo(UnsentKind.ClientLeft));
    }

    /// <summary>Never asked: these tests finish transactions without an upstream session.</summary>
    private sealed class UnusedRoute : IUpstreamRoute
    {
        public string Name => "192.0.2.1:25";

        public Task<UpstreamHandOut> TakeAsync(bool fresh, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task GiveBackAsync(UpstreamConnection connection) => Task.CompletedTask;
    }
}
