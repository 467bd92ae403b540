namespace Interceptor.Store;

/// <summary>
/// One user's mail since a point in time, for the admin's `status` and `users` tables.
/// Counts are transactions by their recorded outcome; <see cref="PolicyRefusals"/> counts refusal records.
/// </summary>
/// <param name="Uid">The Unix user id.</param>
/// <param name="User">The user name recorded most recently for this uid (names can change; the uid is the key).</param>
/// <param name="Delivered">Messages the upstream accepted.</param>
/// <param name="DeliveredRecipients">Recipients of the delivered messages.</param>
/// <param name="Pending">Messages whose outcome was never recorded (relay in progress, or a crash) or is unknown (the final
/// dot went out, no verdict came back): counted as sent by quotas.</param>
/// <param name="Deferred">Messages the upstream answered with 4xx.</param>
/// <param name="Rejected">Messages the upstream answered with 5xx.</param>
/// <param name="Refused">Transactions we refused before relaying (policy, bad data) or the client abandoned.</param>
/// <param name="PolicyRefusals">Policy refusals (quota, suspension, size) recorded for this user.</param>
/// <param name="BytesDelivered">Sum of the sizes of the delivered messages.</param>
/// <param name="LastActivity">The newest transaction start or refusal time of this user.</param>
public sealed record UserActivity(
    uint Uid,
    string User,
    long Delivered,
    long DeliveredRecipients,
    long Pending,
    long Deferred,
    long Rejected,
    long Refused,
    long PolicyRefusals,
    long BytesDelivered,
    DateTimeOffset LastActivity)
{
    /// <summary>Messages held for review and not delivered since (deleted ones included): counted as sent by the quotas.</summary>
    public long Held { get; init; }
}
