using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Where a finished transaction goes: its event to the recorder (the log line and the metrics) and to the policy
/// (quotas, the store, automatic suspension). Only <see cref="RelayTransaction"/> calls it.
/// </summary>
internal sealed class TransactionSink(ConnectionOrigin origin, ITransactionRecorder recorder, IMailPolicy policy, UpstreamLink upstream)
{
    public ConnectionOrigin Origin => origin;

    public IMailPolicy Policy => policy;

    public ITransactionRecorder Recorder => recorder;

    /// <param name="record">False when the caller records the event itself, later (see <see cref="RelayTransaction.FinishAsync"/>).</param>
    public async Task SettleAsync(RelayTransaction transaction, TransactionEvent finished, CancellationToken token, bool record = true)
    {
        if (record)
        {
            recorder.Record(finished);
        }

        await policy.FinishAsync(transaction.Ticket, finished, token);
    }

    public TransactionEvent EventFor(RelayTransaction transaction, string reply, TransactionOutcome outcome, UnsentKind unsent) =>
        new(
            transaction.Id,
            transaction.Started,
            origin.Uid,
            origin.User,
            transaction.Mail.Address,
            transaction.Recipients.Count,
            transaction.SizeBytes,
            upstream.Name,
            upstream.ConnectedTo,
            reply,
            transaction.Elapsed)
        {
            Outcome = outcome,
            Unsent = transaction.FailedHere ? null
                : transaction.DataRefused ? UnsentKind.RefusedAtData
                : transaction.DataStarted ? (transaction.AbandonedByClient ? UnsentKind.AbandonedInData : null)
                : unsent,
            Process = origin.Process,
            SubordinateUid = origin.SubordinateUid,
            ContentRefused = transaction.ContentRefused,
            Stages = transaction.FailedHere ? OwnStages.Failed : transaction.StagesPassed ? OwnStages.Passed : OwnStages.NotRun,
            Relay = upstream.Relay,
        };
}

/// <summary>
/// One mail transaction, from the MAIL we accepted to check (its quota ticket granted) to its end: the envelope, the
/// ticket, the recipients the upstream accepted and the event. It is the only thing that finishes a transaction, and it
/// finishes each exactly once, whatever the outcome: stored, logged and counted.
/// </summary>
internal sealed class RelayTransaction(EnvelopeCommand mail, MessageTicket ticket, TransactionSink sink)
{
    private readonly long _started = Stopwatch.GetTimestamp();

    /// <summary>Time-ordered, unique; the same id is in the trace header and the log line.</summary>
    public string Id { get; } = TransactionIds.Next();

    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;

    public EnvelopeCommand Mail { get; } = mail;

    /// <summary>The quota claim of this message.</summary>
    public MessageTicket Ticket { get; } = ticket;

    public List<string> Recipients { get; } = [];

    public long SizeBytes { get; set; }

    /// <summary>Set once DATA is about to go upstream (after the pending row): from then on it is stored, not tallied.</summary>
    public bool DataStarted { get; private set; }

    /// <summary>
    /// Set when we refused the message for what the client sent (a data problem) and aborted the upstream's DATA: nothing
    /// was relayed, so it counts towards suspension like a transaction that never reached DATA (its Pending row stays).
    /// </summary>
    public bool DataRefused { get; set; }

    /// <summary>Set when a stage refused the message for what it found in it (a spam score): see <see cref="TransactionEvent.ContentRefused"/>.</summary>
    public bool ContentRefused { get; set; }

    /// <summary>
    /// Set when the client closed, reset or went silent (the idle timeout) during DATA, or sent it below the minimum rate
    /// while we mostly waited for it: the upstream dropped the partial message, and it counts as unsent
    /// (<see cref="UnsentKind.AbandonedInData"/>). Not for our own failures mid-DATA (a spool error, a shutdown), nor for a
    /// rate low because of our upstream writes (a slow MX).
    /// </summary>
    public bool AbandonedByClient { get; set; }

    /// <summary>
    /// Set when our side failed it: a stage's <c>StageDecision.Defer</c>, a spool the disk could not keep, the store refusing the
    /// Pending row, DATA too slow through our spool writes. It counts toward no quota or suspension rule, since another user (a
    /// full disk, a wedged scanner) may be what made us fail; only toward <see cref="Core.Policy.LocalFailureBreaker"/>.
    /// </summary>
    public bool FailedHere { get; set; }

    /// <summary>
    /// Set when the message stages ran on the whole message and let it on (or held it): what lets a trial close
    /// <see cref="Core.Policy.LocalFailureBreaker"/> (an upstream that refused DATA itself shows nothing about our side).
    /// </summary>
    public bool StagesPassed { get; set; }

    /// <summary>The upstream's last refusal of a RCPT in this transaction, if any.</summary>
    public SmtpReply? LastRecipientRefusal { get; private set; }

    public bool Finished { get; private set; }

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_started);

    /// <summary>The upstream answered a RCPT: an accepted recipient counts, a refused one gives back its quota.</summary>
    public void RecipientAnswered(string address, SmtpReply reply)
    {
        if (reply.IsPositive)
        {
            Recipients.Add(address);
            return;
        }

        LastRecipientRefusal = reply;
        sink.Policy.ReleaseRecipient(Ticket);
    }

    /// <summary>Fail closed: the transaction is on disk as pending before a byte of it goes upstream. Null when it is.</summary>
    public async Task<SmtpReply?> BeginDataAsync(CancellationToken token)
    {
        if (await sink.Policy.BeginDataAsync(Ticket, sink.EventFor(this, "pending", TransactionOutcome.Pending, UnsentKind.ClientLeft), token) is { } refusal)
        {
            return refusal;
        }

        DataStarted = true;
        return null;
    }

    /// <summary>
    /// Ends the transaction once: records its event and settles it with the policy. Later calls do nothing.
    /// </summary>
    /// <param name="unsent">How it ended, if it never reached DATA (then it is tallied, not stored one row each).</param>
    /// <param name="recordAfterReply">
    /// Settles now but leaves the log line and the metrics to <see cref="RecordAfterReply"/>, which the caller calls once
    /// the client has its reply (in a finally): formatting the line and waking the logger took ~0.1 ms of the final
    /// reply's latency, and nothing the client is told depends on them.
    /// </param>
    public async Task FinishAsync(string reply, TransactionOutcome outcome, UnsentKind unsent, CancellationToken token, bool recordAfterReply = false)
    {
        if (Finished)
        {
            return;
        }

        Finished = true;

        // The upstream refusing every recipient is its verdict on the message (the usual way big providers
        // refuse spam), not a client abandoning it: count it as such for the failure-ratio suspension.
        if (outcome == TransactionOutcome.Refused && Recipients.Count == 0 && LastRecipientRefusal is { } refusal)
        {
            outcome = TransactionEvent.OutcomeOf(refusal.Code);
            reply = $"{refusal} (every recipient refused upstream)";
            unsent = UnsentKind.UpstreamRefused;
        }

        var finished = sink.EventFor(this, reply, outcome, unsent);
        if (recordAfterReply)
        {
            _unrecorded = finished;
        }

        try
        {
            await sink.SettleAsync(this, finished, token, record: !recordAfterReply);
        }
        catch
        {
            // No reply follows a failed settle: the event is still logged and counted.
            RecordAfterReply();
            throw;
        }
    }

    /// <summary>Records the event <see cref="FinishAsync"/> left for after the reply; once, and only then.</summary>
    public void RecordAfterReply()
    {
        if (Interlocked.Exchange(ref _unrecorded, null) is { } finished)
        {
            sink.Recorder.Record(finished);
        }
    }

    private TransactionEvent? _unrecorded;
}
