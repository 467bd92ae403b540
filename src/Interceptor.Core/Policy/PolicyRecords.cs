namespace Interceptor.Core.Policy;

/// <summary>A user the kernel keeps off port 25 until an admin unblocks them.</summary>
public sealed record Suspension(uint Uid, string User, string Reason, DateTimeOffset Since, SuspensionSource Source);

public enum SuspensionSource
{
    Admin,
    Automatic,
}

/// <summary>What a policy refusal was about; names are stable (metrics labels, the store, the CLI).</summary>
public enum RefusalKind
{
    MessagesPerHour,
    MessagesPerDay,
    RecipientsPerHour,
    RecipientsPerDay,
    RecipientsPerMessage,
    Connections,
    MessageSize,
    Suspended,

    /// <summary>Refused at MAIL while the user's recent messages kept failing on our side (<see cref="LocalFailureBreaker"/>).</summary>
    LocalFailures,
}

/// <summary>One refusal by our own policy, kept for the automatic-suspension rules and `status`.</summary>
public sealed record PolicyRefusal(DateTimeOffset Time, uint Uid, string User, RefusalKind Kind, string Detail);
