using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;
using Interceptor.Core.Threading;
using Microsoft.Extensions.Logging;

namespace Interceptor.Core.Policy;

/// <summary>One message's claim on its user's quotas, from MAIL to the end of the transaction.</summary>
public sealed class MessageTicket
{
    internal MessageTicket(uint uid, string user, QuotaLimits limits)
    {
        Uid = uid;
        User = user;
        Limits = limits;
    }

    public uint Uid { get; }
    public string User { get; }
    public QuotaLimits Limits { get; }
    internal int ReservedMessages { get; set; }
    internal int ReservedRecipients { get; set; }
    internal bool Pending { get; set; }
    internal bool PerMessageRefusalRecorded { get; set; }

    /// <summary>The one message let through after failures of ours (<see cref="LocalFailureBreaker"/>): its number, or 0.</summary>
    internal long LocalFailureTrial { get; set; }
}

/// <summary>Hears about refusals and suspensions (the metrics).</summary>
public interface IPolicyObserver
{
    void Refused(RefusalKind kind, uint uid, string user);
    void Suspended(Suspension suspension);
}

/// <summary>
/// The per-user policy a session consults at each step: suspension and the connection cap at connect,
/// message quotas at MAIL, recipient quotas at RCPT, a durable "pending" record before DATA is relayed
/// (fail closed: no record, no relay), and the accounting of what really left at the end.
/// </summary>
public sealed class MailPolicy(
    LimitsOptions limits,
    QuotaLedger ledger,
    AutoSuspensionRules rules,
    SuspensionRegistry suspensions,
    IStateStore store,
    TimeProvider time,
    ILogger logger,
    IPolicyObserver? observer = null,
    LocalFailureBreaker? localFailures = null) : IMailPolicy
{
    public QuotaLedger Ledger => ledger;

    public QuotaLimits LimitsFor(string user) => limits.For(user);

    /// <summary>Null when the user may open one more session (call <see cref="CloseConnection"/> after it), else the refusal.</summary>
    public async Task<SmtpReply?> OpenConnectionAsync(uint uid, string user, CancellationToken cancellationToken)
    {
        if (suspensions.Refuses(uid, out var suspension))
        {
            observer?.Refused(RefusalKind.Suspended, uid, user);
            return new SmtpReply(554, "5.7.1", QuotaReplies.Suspended(suspension!).Text);
        }

        var userLimits = limits.For(user);
        if (ledger.TryOpenConnection(uid, userLimits, out var exceeded))
        {
            return null;
        }

        await RefuseAsync(uid, user, exceeded!, cancellationToken);
        return QuotaReplies.For(exceeded!, user);
    }

    public void CloseConnection(uint uid) => ledger.CloseConnection(uid);

    /// <summary>At MAIL: the ticket for the new message, or the refusal.</summary>
    public async Task<(MessageTicket? Ticket, SmtpReply? Refusal)> StartMessageAsync(uint uid, string user, long? declaredSize, CancellationToken cancellationToken)
    {
        if (suspensions.Refuses(uid, out var suspension))
        {
            observer?.Refused(RefusalKind.Suspended, uid, user);
            return (null, QuotaReplies.Suspended(suspension!));
        }

        long trial = 0;
        if (localFailures?.Admit(uid, user, out trial) is { } failingHere)
        {
            // Not a quota refusal: it counts toward no suspension (her mail would fail on our side anyway).
            observer?.Refused(RefusalKind.LocalFailures, uid, user);
            store.CountTally(TallyEntry.One(time.GetUtcNow(), uid, user, TallyEntry.RefusalKindName(RefusalKind.LocalFailures), "", "messages failing on our side"));
            return (null, failingHere);
        }

        var userLimits = limits.For(user);
        if (declaredSize > userLimits.MessageSizeBytes)
        {
            var tooBig = new QuotaExceeded(RefusalKind.MessageSize, (int)Math.Min(int.MaxValue, declaredSize.Value), (int)Math.Min(int.MaxValue, userLimits.MessageSizeBytes!.Value));
            localFailures?.Finished(uid, trial, OwnStages.NotRun);
            await RefuseAsync(uid, user, tooBig, cancellationToken);
            return (null, QuotaReplies.For(tooBig, user));
        }

        if (!ledger.TryReserveMessage(uid, userLimits, out var exceeded))
        {
            localFailures?.Finished(uid, trial, OwnStages.NotRun);
            await RefuseAsync(uid, user, exceeded!, cancellationToken);
            return (null, QuotaReplies.For(exceeded!, user));
        }

        return (new MessageTicket(uid, user, userLimits) { ReservedMessages = 1, LocalFailureTrial = trial }, null);
    }

    /// <summary>At RCPT, before relaying it: null when the recipient fits the user's quotas.</summary>
    public async Task<SmtpReply?> ReserveRecipientAsync(MessageTicket ticket, CancellationToken cancellationToken)
    {
        var perMessage = ticket.Limits.RecipientsPerMessage!.Value;
        if (ticket.ReservedRecipients >= perMessage)
        {
            var tooMany = new QuotaExceeded(RefusalKind.RecipientsPerMessage, ticket.ReservedRecipients, perMessage);
            if (!ticket.PerMessageRefusalRecorded)
            {
                // Once per message: a newsletter over the cap is one refusal, not one per extra recipient.
                ticket.PerMessageRefusalRecorded = true;
                await RefuseAsync(ticket.Uid, ticket.User, tooMany, cancellationToken);
            }

            return QuotaReplies.For(tooMany, ticket.User);
        }

        if (ledger.TryReserveRecipient(ticket.Uid, ticket.Limits, out var exceeded))
        {
            ticket.ReservedRecipients++;
            return null;
        }

        await RefuseAsync(ticket.Uid, ticket.User, exceeded!, cancellationToken);
        return QuotaReplies.For(exceeded!, ticket.User);
    }

    /// <summary>The upstream refused the recipient: it does not count.</summary>
    public void ReleaseRecipient(MessageTicket ticket)
    {
        ledger.Settle(ticket.Uid, 0, 1, delivered: false, 0);
        ticket.ReservedRecipients--;
    }

    /// <summary>Before DATA goes upstream: the transaction is on disk as pending, or the client gets 451.</summary>
    public async Task<SmtpReply?> BeginDataAsync(MessageTicket ticket, TransactionEvent pending, CancellationToken cancellationToken)
    {
        try
        {
            await store.RecordTransactionAsync(pending with { Outcome = TransactionOutcome.Pending }, cancellationToken);
            ticket.Pending = true;
            return null;
        }
        catch (StoreUnavailableException e)
        {
            logger.RefusingMailStoreUnwritable(ticket.Uid, ticket.User, e.Message);
            return QuotaReplies.StoreUnavailable;
        }
    }

    /// <summary>The transaction ended (delivered, refused, deferred or abandoned): settle quotas, record, maybe suspend.</summary>
    public async Task FinishAsync(MessageTicket ticket, TransactionEvent final, CancellationToken cancellationToken)
    {
        // Unknown (the final dot went out, no verdict came) may have been delivered: charged, never released. Held is
        // charged as it is held: otherwise a user whose mail is held (a spam score in the hold band, Suspension.Action=Hold)
        // could fill the hold store without end, her quotas never running out.
        var delivered = final.Outcome is TransactionOutcome.Delivered or TransactionOutcome.Unknown or TransactionOutcome.Held;
        ledger.Settle(ticket.Uid, ticket.ReservedMessages, ticket.ReservedRecipients, delivered, final.RecipientCount);
        ticket.ReservedMessages = ticket.ReservedRecipients = 0;
        SettleLocalFailures(ticket, final);
        var now = time.GetUtcNow();
        if (!ticket.Pending && (final.Unsent is not null || final.FailedHere))
        {
            // Nothing of it went upstream beyond MAIL/RCPT: a client can make thousands a second, so it is counted per user,
            // kind and minute instead of stored one row each, and counts towards suspension. Failing here before DATA can
            // only be the store refusing the Pending row: tallied as such, toward no rule (its disk is anyone's to fill).
            var unsent = final.Unsent ?? UnsentKind.RefusedAtData;
            store.CountTally(TallyEntry.One(now, ticket.Uid, ticket.User, TallyEntry.UnsentKindName(unsent), final.Outcome.ToString(), final.Reply));
            if (final.FailedHere)
            {
                return;
            }

            // Both rules see it: an upstream refusal of MAIL or of every recipient is also a verdict for the failure ratio.
            var unsentReason = rules.ObserveUnsent(ticket.Uid, now, unsent);
            unsentReason = rules.ObserveOutcome(ticket.Uid, now, final.Outcome) ?? unsentReason;
            if (unsentReason is not null)
            {
                await AutoSuspendAsync(ticket.Uid, ticket.User, unsentReason, cancellationToken);
            }

            return;
        }

        // The outcome may follow with the next batch of writes (one commit per relayed message instead of two) and the
        // client need not wait for it: a relayed message's Pending row is on disk and counts as sent until then, and a
        // transaction that never reached DATA relayed nothing.
        _ = store.RecordOutcomeDeferred(final).ContinueWith(
            (recorded, state) => LogUnrecorded((TransactionEvent)state!, recorded.Exception),
            final,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        var reason = rules.ObserveOutcome(ticket.Uid, now, final.Outcome);

        // A message we refused after DATA for what the client sent relayed nothing either: a loop of them must reach
        // Suspension.UnsentLimit like a loop of refused MAIL commands (its row is stored: the Pending row came first).
        if (final.Unsent is { } refusedAtData)
        {
            reason = rules.ObserveUnsent(ticket.Uid, now, refusedAtData) ?? reason;
        }

        if (final.ContentRefused)
        {
            reason = rules.ObserveRefusal(ticket.Uid, now) ?? reason;
        }

        if (reason is not null)
        {
            await AutoSuspendAsync(ticket.Uid, ticket.User, reason, cancellationToken);
        }
    }

    private void SettleLocalFailures(MessageTicket ticket, TransactionEvent final)
    {
        if (localFailures is null)
        {
            return;
        }

        var trial = ticket.LocalFailureTrial;
        ticket.LocalFailureTrial = 0;
        var change = localFailures.Finished(ticket.Uid, trial, final.Stages);
        if (change.Opened is { } opened)
        {
            logger.FailingHereRefusedAtMail(ticket.Uid, ticket.User, opened.Failures, localFailures.Options.LocalFailureWindow.TotalMinutes, opened.Cooldown.TotalSeconds, final.Id);
        }
        else if (change.Freed)
        {
            logger.FailingHereOver(ticket.Uid, ticket.User, final.Id);
        }
    }

    private void LogUnrecorded(TransactionEvent final, Exception? failure)
    {
        // A pending row, if any, stays and counts as sent: conservative, never unaccounted.
        var reason = failure is AggregateException { InnerException: { } inner } ? inner.Message : failure?.Message;
        logger.TransactionNotRecorded(final.Id, final.Uid, final.User, reason);
    }

    private async Task RefuseAsync(uint uid, string user, QuotaExceeded exceeded, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        observer?.Refused(exceeded.Kind, uid, user);

        // A connection flood is thousands of refusals a second: each is counted (tallied per user and minute, with one
        // log line per tally when it is written), so a flood can fill neither the journal nor the disk.
        if (exceeded.Kind == RefusalKind.Connections)
        {
            store.CountTally(TallyEntry.One(now, uid, user, TallyEntry.RefusalKindName(exceeded.Kind), "", $"{exceeded.Count}/{exceeded.Limit}"));
            if (rules.ObserveRefusal(uid, now) is { } floodReason)
            {
                await AutoSuspendAsync(uid, user, floodReason, cancellationToken);
            }

            return;
        }

        logger.PolicyRefused(uid, user, exceeded.Kind, exceeded.Count, exceeded.Limit);
        try
        {
            await store.RecordRefusalAsync(new PolicyRefusal(now, uid, user, exceeded.Kind, $"{exceeded.Count}/{exceeded.Limit}"), cancellationToken);
        }
        catch (StoreUnavailableException e)
        {
            logger.RefusalNotRecorded(uid, user, e.Message);
        }

        var reason = rules.ObserveRefusal(uid, now);
        if (reason is not null)
        {
            await AutoSuspendAsync(uid, user, reason, cancellationToken);
        }
    }

    private async Task AutoSuspendAsync(uint uid, string user, string reason, CancellationToken cancellationToken)
    {
        var counts = AlertCounts.Of(ledger, uid);
        try
        {
            var suspension = new Suspension(uid, user, reason, time.GetUtcNow(), SuspensionSource.Automatic);

            // Runs nft and reads /etc/subuid: not on a thread other sessions' sockets wait for (see BlockingWork).
            if (await BlockingWork.RunAsync(() => new ValueTask<bool>(suspensions.SuspendAsync(suspension, counts, cancellationToken))))
            {
                observer?.Suspended(suspension);
                logger.SuspendedAutomatically(uid, user, reason);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.SuspensionOnlyInMemory(uid, user, e.Message);
        }
    }
}
