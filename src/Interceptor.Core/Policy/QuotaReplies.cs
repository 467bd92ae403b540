using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>Policy refusals name the reason, the user, the count and the limit (the reply form in src/README.md, Policy).</summary>
public static class QuotaReplies
{
    public static SmtpReply For(QuotaExceeded exceeded, string user) => exceeded.Kind switch
    {
        RefusalKind.MessagesPerHour => new(451, "4.7.1", $"hourly message quota for user {user} exhausted ({exceeded.Count}/{exceeded.Limit}); try later"),
        RefusalKind.MessagesPerDay => new(451, "4.7.1", $"daily message quota for user {user} exhausted ({exceeded.Count}/{exceeded.Limit}); try later"),
        RefusalKind.RecipientsPerHour => new(452, "4.7.1", $"hourly recipient quota for user {user} exhausted ({exceeded.Count}/{exceeded.Limit}); try later"),
        RefusalKind.RecipientsPerDay => new(452, "4.7.1", $"daily recipient quota for user {user} exhausted ({exceeded.Count}/{exceeded.Limit}); try later"),
        RefusalKind.RecipientsPerMessage => new(452, "4.5.3", $"too many recipients for user {user} ({exceeded.Count}/{exceeded.Limit} per message); send the rest in another message"),
        RefusalKind.Connections => new(421, "4.7.0", $"too many concurrent connections for user {user} ({exceeded.Count}/{exceeded.Limit}); try later"),
        RefusalKind.MessageSize => new(552, "5.3.4", $"message size {exceeded.Count} exceeds the limit of {exceeded.Limit} bytes for user {user}"),
        _ => throw new ArgumentOutOfRangeException(nameof(exceeded), exceeded.Kind, null),
    };

    public static SmtpReply Suspended(Suspension suspension) =>
        new(550, "5.7.1", $"user {suspension.User} is suspended from sending mail: {suspension.Reason}; contact the server administrator");

    public static SmtpReply StoreUnavailable { get; } =
        new(451, "4.3.0", "accounting store unavailable; mail is not relayed unaccounted, try again later");
}
