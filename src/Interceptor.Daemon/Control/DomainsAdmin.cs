using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Daemon.Domains;
using Interceptor.Smtp.Identity;
using Interceptor.Smtp.Pool;

namespace Interceptor.Daemon.Control;

/// <summary>`domains`' answer: the domains of every user (or of <see cref="User"/>), with their DNS report when checked.</summary>
public sealed record DomainsData(string Source, string? User, bool Checked, IReadOnlyList<DomainEntry> Domains);

/// <summary>One domain; the three outcomes are null unless `--check` was given.</summary>
public sealed record DomainEntry(string Domain, string User, CheckOutcome? Dkim, CheckOutcome? Spf, CheckOutcome? Dmarc);

/// <summary>The `domains` verb: the daemon's domain map (as the From policy and DKIM signing see it) and, asked, its DNS report.</summary>
internal sealed class DomainsAdmin(AdminContext context, Func<string, (uint Uid, string Name)?> resolveUser)
{
    /// <summary>The lookups of a report; the resolver of Burn.DnsServer (as the DNSBL checks use) unless a test gives one.</summary>
    internal Func<ITxtLookup> Lookup { get; init; } = () => new DnsTxtLookup(DnsblChecker.ParseServer(context.Options.Burn.DnsServer));

    internal TimeSpan ReportBound { get; init; } = DomainChecker.DefaultReportBound;

    public async Task<DomainsData> HandleAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        var options = context.Options;
        var map = context.DomainMap?.Current ?? DomainMap.Empty;

        // A user without an account may still own domains in the panel's map: the name is then taken as given.
        var user = request.User is null ? null : resolveUser(request.User)?.Name ?? request.User;
        var domains = map.ByUser()
            .Where(u => user is null || u.Key == user)
            .SelectMany(u => u.Value.Select(d => (Domain: d, User: u.Key)))
            .OrderBy(d => d.Domain, StringComparer.Ordinal)
            .ToList();
        var check = request.Check == true;
        IReadOnlyList<DomainReport> reports = [];
        if (check && domains.Count > 0)
        {
            var keys = options.Dkim.Enabled ? new DkimKeyStore(options.Dkim.KeyDirectory, options.Dkim.Selector, [.. options.Dkim.Algorithms]) : null;
            var checker = new DomainChecker(options, Lookup(), keys) { ReportBound = ReportBound };
            reports = await checker.CheckAllAsync(domains, cancellationToken);
        }

        return new DomainsData(options.Domains.Source.ToString(), user, check, [.. domains.Select((d, i) =>
            check ? new DomainEntry(d.Domain, d.User, reports[i].Dkim, reports[i].Spf, reports[i].Dmarc) : new DomainEntry(d.Domain, d.User, null, null, null))]);
    }
}
