using System.Net;
using Interceptor.Core.Options;
using Interceptor.Smtp.Identity;

namespace Interceptor.Daemon.Domains;

/// <summary>One part of a domain's DNS report: OK, or what is wrong.</summary>
public sealed record CheckOutcome(bool Ok, string Detail);

/// <summary>A domain's DNS report (`domains --check`).</summary>
public sealed record DomainReport(CheckOutcome Dkim, CheckOutcome Spf, CheckOutcome Dmarc);

/// <summary>
/// Checks what receivers will look up for a customer's domain: the DKIM key (file present, public key published at
/// <c>selector._domainkey.domain</c> and the same), SPF (a record that authorises every address the user's mail leaves
/// from, see <see cref="SpfEvaluator"/>) and DMARC (a record at <c>_dmarc.domain</c>). Every lookup is bounded by
/// <see cref="DnsTxtLookup"/>; the whole report by <see cref="ReportBound"/>, after which what is unfinished says so.
/// </summary>
public sealed class DomainChecker(InterceptorOptions options, ITxtLookup dns, DkimKeyStore? keys)
{
    /// <summary>Below the control socket's bound for a query (30 s), so the admin gets a report, never a timeout.</summary>
    public static readonly TimeSpan DefaultReportBound = TimeSpan.FromSeconds(20);

    /// <summary>Domains checked at once: a reseller's hundreds of domains neither take minutes nor flood the resolver.</summary>
    public const int Parallel = 8;

    private readonly SpfEvaluator _spf = new(dns);

    public TimeSpan ReportBound { get; init; } = DefaultReportBound;

    /// <summary>The addresses the user's mail leaves from (its Relay.Mode), and what cannot be known.</summary>
    public static (IReadOnlyList<IPAddress> Addresses, string? Problem) SendersOf(InterceptorOptions options, string user)
    {
        ArgumentNullException.ThrowIfNull(options);
        var mode = options.Relay.ModeByUser.TryGetValue(user, out var own) ? own : options.Relay.Mode;
        var addresses = new List<IPAddress>();
        string? problem = null;
        if (mode != RelayMode.Smarthost)
        {
            if (IPAddress.TryParse(options.Burn.HostAddress, out var host))
            {
                addresses.Add(host);
            }
            else
            {
                problem = "the host's address cannot be checked: Burn.HostAddress is not set";
            }
        }

        if (mode != RelayMode.OriginalDestination)
        {
            addresses.AddRange(options.Relay.Smarthosts.Select(r => IPAddress.TryParse(r.EgressAddress, out var a) ? a : null).OfType<IPAddress>());
        }

        return (addresses, problem);
    }

    /// <summary>The reports of these (domain, user) pairs, in their order, within <see cref="ReportBound"/>.</summary>
    public async Task<IReadOnlyList<DomainReport>> CheckAllAsync(IReadOnlyList<(string Domain, string User)> domains, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(domains);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(ReportBound);
        using var gate = new SemaphoreSlim(Parallel);
        return await Task.WhenAll(domains.Select(async d =>
        {
            try
            {
                await gate.WaitAsync(bound.Token);
                try
                {
                    return await CheckAsync(d.Domain, d.User, bound.Token);
                }
                finally
                {
                    gate.Release();
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                var late = new CheckOutcome(false, $"dns: timeout (the report is bounded to {ReportBound.TotalSeconds:0} s)");
                return new DomainReport(late, late, late);
            }
        }));
    }

    public async Task<DomainReport> CheckAsync(string domain, string user, CancellationToken cancellationToken)
    {
        var dkim = DkimAsync(domain, cancellationToken);
        var spf = SpfAsync(domain, user, cancellationToken);
        var dmarc = DmarcAsync(domain, cancellationToken);
        return new DomainReport(await dkim, await spf, await dmarc);
    }

    private async Task<CheckOutcome> DkimAsync(string domain, CancellationToken cancellationToken)
    {
        if (keys is null)
        {
            return new(false, "not signed: Dkim.Enabled is false");
        }

        var (found, key, problem) = keys.Find(domain);
        if (found != KeyLookup.Found)
        {
            return new(false, problem ?? $"no key file {keys.PathFor(domain)}");
        }

        var name = $"{keys.Selector}._domainkey.{domain}";
        var answer = await dns.TxtAsync(name, cancellationToken);
        if (answer.Error is { } error)
        {
            return new(false, $"dns: {error} ({name})");
        }

        var published = answer.Records.Select(r => Tag(r, "p")).OfType<string>().Select(p => string.Concat(p.Where(c => !char.IsWhiteSpace(c)))).ToList();
        var expected = Convert.ToBase64String(key!.PublicKey);
        return published switch
        {
            [] => new(false, $"no DKIM record at {name}"),
            _ when published.Contains(expected, StringComparer.Ordinal) => new(true, $"published at {name}"),
            _ when published.All(p => p.Length == 0) => new(false, $"the key at {name} is revoked (empty p=)"),
            _ => new(false, $"the record at {name} does not match the key file (p= differs)"),
        };
    }

    private async Task<CheckOutcome> SpfAsync(string domain, string user, CancellationToken cancellationToken)
    {
        var (senders, problem) = SendersOf(options, user);
        var results = await Task.WhenAll(senders.Select(async a => (Address: a, Result: await _spf.EvaluateAsync(domain, a, cancellationToken))));
        if (results.FirstOrDefault(r => r.Result.Verdict is SpfVerdict.TempError or SpfVerdict.None or SpfVerdict.PermError) is { Result: not null } broken)
        {
            return new(false, broken.Result.Detail);
        }

        var wrong = results.Where(r => r.Result.Verdict != SpfVerdict.Pass)
            .Select(r => $"{r.Address} not authorised ({r.Result.Verdict.ToString().ToLowerInvariant()}: {r.Result.Detail})")
            .Concat(problem is null ? [] : [problem])
            .ToList();
        if (wrong.Count > 0)
        {
            return new(false, string.Join("; ", wrong));
        }

        return new(true, $"authorises {string.Join(", ", senders)}");
    }

    private async Task<CheckOutcome> DmarcAsync(string domain, CancellationToken cancellationToken)
    {
        var name = "_dmarc." + domain;
        var answer = await dns.TxtAsync(name, cancellationToken);
        if (answer.Error is { } error)
        {
            return new(false, $"dns: {error} ({name})");
        }

        var records = answer.Records.Where(r => string.Equals(Tag(r, "v"), "DMARC1", StringComparison.OrdinalIgnoreCase)).ToList();
        return records.Count switch
        {
            0 => new(false, $"no DMARC record at {name}"),
            1 => new(true, $"p={Tag(records[0], "p") ?? "(none given)"}"),
            _ => new(false, $"{records.Count} DMARC records at {name} (receivers ignore them all)"),
        };
    }

    /// <summary>A tag's value in a "tag=value; tag=value" record (DKIM, DMARC), or null.</summary>
    public static string? Tag(string record, string tag)
    {
        ArgumentNullException.ThrowIfNull(record);
        foreach (var part in record.Split(';'))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && part[..equals].Trim().Equals(tag, StringComparison.OrdinalIgnoreCase))
            {
                return part[(equals + 1)..].Trim();
            }
        }

        return null;
    }
}
