using System.Globalization;
using System.Text;
using Interceptor.Daemon.Domains;

namespace Interceptor.Daemon.Control;

/// <summary>The table of `domains`: domain, user and, checked, OK or what is wrong for DKIM, SPF and DMARC.</summary>
public static class DomainsRendering
{
    public static string Domains(DomainsData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var who = data.User is null ? "" : $" of {data.User}";
        if (data.Domains.Count == 0)
        {
            return data.Source == nameof(Core.Options.DomainSource.None)
                ? $"no domains: Domains.Source is None (no domain map){Environment.NewLine}"
                : $"no domains{who} in the domain map (Domains.Source {data.Source}){Environment.NewLine}";
        }

        var table = data.Checked ? new TextTable("DOMAIN", "USER", "DKIM", "SPF", "DMARC") : new TextTable("DOMAIN", "USER");
        foreach (var d in data.Domains)
        {
            if (data.Checked)
            {
                table.Add(d.Domain, d.User, Cell(d.Dkim), Cell(d.Spf), Cell(d.Dmarc));
            }
            else
            {
                table.Add(d.Domain, d.User);
            }
        }

        var text = new StringBuilder();
        var problems = data.Domains.Count(d => d.Dkim?.Ok == false || d.Spf?.Ok == false || d.Dmarc?.Ok == false);
        text.Append(CultureInfo.InvariantCulture, $"{data.Domains.Count} domain{(data.Domains.Count == 1 ? "" : "s")}{who} (Domains.Source {data.Source})");
        text.AppendLine(data.Checked ? string.Create(CultureInfo.InvariantCulture, $", {problems} with problems:") : ":");
        return text.Append(table.Render()).ToString();
    }

    private static string Cell(CheckOutcome? outcome) => outcome is null ? "-" : outcome.Ok ? "OK" : outcome.Detail;
}
