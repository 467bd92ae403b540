using Interceptor.Core.Events;

namespace Interceptor.Core.Policy;

/// <summary>
/// What the quota history needs of a journal row that counts as sent (<see cref="TransactionEvent.CountsAsSent"/>), and
/// nothing else: a restart reads a day of them, and the texts of a full row (a reply of up to 200 lines an MX chose,
/// the sender, the process) would cost the start memory and time for nothing.
/// </summary>
public readonly record struct QuotaCharge(uint Uid, DateTimeOffset Started, TimeSpan Duration, int Recipients, TransactionOutcome Outcome)
{
    /// <summary>
    /// When its transaction ended: when the quotas charged it (<see cref="QuotaLedger.Settle"/>). A Pending row's duration
    /// only reaches its DATA.
    /// </summary>
    public DateTimeOffset Ended => Started + Duration;
}
