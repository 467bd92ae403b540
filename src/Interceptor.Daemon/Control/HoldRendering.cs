using System.Globalization;
using System.Text;

namespace Interceptor.Daemon.Control;

/// <summary>The tables of the hold-and-release verbs (held, release, delete).</summary>
public static class HoldRendering
{
    private const int ReasonWidth = 60;
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static string Held(HeldData held)
    {
        ArgumentNullException.ThrowIfNull(held);
        var who = held.User is null ? "" : string.Create(C, $" of {held.User} (uid {held.Uid})");
        var since = held.Since is { } s ? $" since {AdminRendering.Time(s)}" : "";
        if (held.Messages.Count == 0)
        {
            return $"no held messages{who}{since}{Environment.NewLine}";
        }

        var table = new TextTable("HELD", "ID", "USER", "FROM", ">RCPTS", ">SIZE", "STATE", "WHY");
        foreach (var m in held.Messages)
        {
            var state = m.State.ToString().ToLowerInvariant() + (m.Attempts > 0 ? string.Create(C, $" ({m.Attempts})") : "");
            var why = m.State is Hold.HoldState.Held ? m.Reason : m.LastResult ?? m.Reason;
            table.Add(AdminRendering.Time(m.HeldAt), m.Id, m.User, m.Sender.Length == 0 ? "<>" : m.Sender, m.Recipients.Count.ToString(C),
                AdminRendering.Size(m.SizeBytes), state, AdminRendering.Shorten(why, ReasonWidth));
        }

        var text = new StringBuilder();
        text.AppendLine(C, $"{held.Messages.Count} held message{(held.Messages.Count == 1 ? "" : "s")}{who}{since}, oldest first:");
        return text.Append(table.Render()).ToString();
    }

    public static string Change(HoldChangeData change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return change.Message + Environment.NewLine;
    }
}
