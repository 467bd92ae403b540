using System.Globalization;

namespace Interceptor.Core.Policy;

/// <summary>
/// The usage counts in the alert command's environment on a suspension (SMTPI_MESSAGES_HOUR, ...), the same whether
/// the policy suspended the user automatically or an admin blocked them.
/// </summary>
public static class AlertCounts
{
    public static Dictionary<string, string> Of(QuotaLedger ledger, uint uid)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        var (messagesHour, messagesDay, recipientsHour, recipientsDay) = ledger.Usage(uid);
        return new Dictionary<string, string>
        {
            ["SMTPI_MESSAGES_HOUR"] = messagesHour.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_MESSAGES_DAY"] = messagesDay.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_RECIPIENTS_HOUR"] = recipientsHour.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_RECIPIENTS_DAY"] = recipientsDay.ToString(CultureInfo.InvariantCulture),
        };
    }
}
