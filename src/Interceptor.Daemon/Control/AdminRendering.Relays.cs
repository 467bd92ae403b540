using System.Text;

namespace Interceptor.Daemon.Control;

/// <summary>The relay pool's verbs (issue 15) as text.</summary>
public static partial class AdminRendering
{
    /// <summary>`relays`: one row per relay, then the host in Auto mode, then the evidence of burned ones.</summary>
    public static string Relays(RelaysData r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var text = new StringBuilder();
        text.AppendLine(C, $"relay mode: {r.Mode}");
        var table = new TextTable("NAME", "ROLE", "STATE", "SINCE", ">MSGS/H", "LAST DNSBL", "REASON");
        foreach (var row in r.Host is { } host ? [.. r.Relays, host] : r.Relays)
        {
            table.Add(row.Name, row.Role, StateText(row), Time(row.Since), Number(row.MessagesLastHour),
                row.LastDnsbl.Length == 0 ? "-" : $"{Shorten(row.LastDnsbl, 40)} ({Time(row.LastDnsblAt ?? row.Since)})", Shorten(row.Reason, ReplyWidth));
        }

        text.Append(table.Render());
        foreach (var row in r.Relays.Where(x => x.State == "burned" && x.Evidence.Count > 0))
        {
            text.AppendLine(C, $"evidence against {row.Name}:");
            foreach (var line in row.Evidence)
            {
                text.AppendLine(C, $"  {Shorten(line, 100)}");
            }
        }

        return text.ToString();
    }

    /// <summary>`relay burn|restore`, `host burn|restore`.</summary>
    public static string RelayChange(RelayChangeData c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.Message + Environment.NewLine + RelayLine(c.State) + Environment.NewLine;
    }

    /// <summary>One relay on one line, as `status` lists them.</summary>
    public static string RelayLine(RelayRow r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var reason = r.Reason.Length == 0 ? "" : $": {r.Reason}";
        var dnsbl = r.LastDnsbl.Length == 0 ? "not checked yet" : r.LastDnsbl;
        return string.Create(C, $"relay {r.Name} ({r.Role}): {StateText(r)} since {Time(r.Since)}, {r.MessagesLastHour} message{Plural(r.MessagesLastHour)} in the last hour, DNSBL {dnsbl}{reason}");
    }

    private static string StateText(RelayRow r) =>
        r.State == "down" && r.DownUntil is { } until ? $"down until {Time(until)}" : r.State.Replace('_', ' ');
}
