using Interceptor.Core.Events;
using Interceptor.Core.Policy;

namespace Interceptor.Store;

/// <summary>
/// Rejects malformed records before they are queued: one bad row would otherwise fail the whole batch it shares with
/// other sessions' writes.
/// </summary>
internal static class Validate
{
    public static void Transaction(TransactionEvent transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(transaction.Id, nameof(transaction));
        Text(transaction.User, transaction.Sender, transaction.OriginalDestination, transaction.Upstream, transaction.Reply);
        Defined(transaction.Outcome);
    }

    public static void Refusal(PolicyRefusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        Text(refusal.User, refusal.Detail);
        Defined(refusal.Kind);
    }

    public static void Suspension(Suspension suspension)
    {
        ArgumentNullException.ThrowIfNull(suspension);
        Text(suspension.User, suspension.Reason);
        Defined(suspension.Source);
    }

    private static void Text(params string?[] values)
    {
        foreach (var value in values)
        {
            if (value is null)
            {
                throw new ArgumentException("a required text field of the record is null");
            }
        }
    }

    private static void Defined<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        if (!Enum.IsDefined(value))
        {
            throw new ArgumentException($"{typeof(TEnum).Name} value {value} is not defined");
        }
    }
}
