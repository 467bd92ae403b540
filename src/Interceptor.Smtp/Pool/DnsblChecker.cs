using System.Net;
using DnsClient;
using Interceptor.Core.Pool;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Pool;

/// <summary>
/// Looks an address up in <c>Burn.DnsblZones</c> through <c>Burn.DnsServer</c> (or the system's resolver). Every
/// lookup is bounded (<see cref="Timeout"/> per try, <see cref="Retries"/> retries); no answer in time, a SERVFAIL or
/// REFUSED, and the 127.255.255.x "your query was refused" answers are resolver errors: logged as warnings, never
/// listings (Spamhaus: "do not act on them"), never clean checks. The caller alerts on them.
/// </summary>
public sealed partial class DnsblChecker
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);
    public const int Retries = 1;

    private readonly LookupClient _client;
    private readonly IReadOnlyList<string> _zones;
    private readonly ILogger _logger;

    /// <param name="zones">Burn.DnsblZones.</param>
    /// <param name="server">Burn.DnsServer: null for the system's resolver.</param>
    public DnsblChecker(IReadOnlyList<string> zones, IPEndPoint? server, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(zones);
        ArgumentNullException.ThrowIfNull(logger);
        _zones = zones;
        _logger = logger;
        _client = BoundedClient(server);
    }

    /// <summary>
    /// A resolver client whose every lookup is bounded (<see cref="Timeout"/>, <see cref="Retries"/>), uncached and
    /// answering errors instead of throwing them; the domains report (issue 17) asks the same resolver the same way.
    /// </summary>
    public static LookupClient BoundedClient(IPEndPoint? server)
    {
        var options = server is null ? new LookupClientOptions() : new LookupClientOptions(server);
        options.Timeout = Timeout;
        options.Retries = Retries;
        // A cached answer would hide a delisting (or a fixed record) for its TTL; checks are hourly or asked for anyway.
        options.UseCache = false;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.ContinueOnEmptyResponse = false;
        return new LookupClient(options);
    }

    /// <summary>Parses Burn.DnsServer ("", "address" or "address:port").</summary>
    public static IPEndPoint? ParseServer(string text) =>
        text.Length == 0 ? null
        : IPAddress.TryParse(text, out var address) ? new IPEndPoint(address, 53)
        : IPEndPoint.Parse(text);

    /// <summary>One result per zone, all zones asked at once.</summary>
    public async Task<IReadOnlyList<DnsblResult>> CheckAsync(IPAddress address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        var results = await Task.WhenAll(_zones.Select(zone => CheckZoneAsync(address, zone, cancellationToken)));
        foreach (var error in results.Where(r => r.Verdict == DnsblVerdict.ResolverError))
        {
            LogResolverError(_logger, address, error.Zone, error.Detail);
        }

        return results;
    }

    private async Task<DnsblResult> CheckZoneAsync(IPAddress address, string zone, CancellationToken cancellationToken)
    {
        var name = DnsblAnswer.QueryName(address, zone);
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, QueryType.A, QueryClass.IN, cancellationToken);
        }
        catch (DnsResponseException e)
        {
            return new DnsblResult(zone, DnsblVerdict.ResolverError, $"{e.Code}: {e.Message}");
        }

        if (response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
        {
            return new DnsblResult(zone, DnsblVerdict.NotListed, "NXDOMAIN");
        }

        if (response.HasError)
        {
            return new DnsblResult(zone, DnsblVerdict.ResolverError, response.Header.ResponseCode.ToString());
        }

        var answers = response.Answers.ARecords().Select(a => a.Address).ToList();
        var verdict = DnsblAnswer.Classify(answers);
        return new DnsblResult(zone, verdict, answers.Count == 0 ? "no A record" : string.Join(" ", answers));
    }

    [LoggerMessage(EventId = 1501, Level = LogLevel.Warning, Message = "DNSBL lookup of {Address} in {Zone} gave no usable answer ({Detail}); not counted as a listing")]
    private static partial void LogResolverError(ILogger logger, IPAddress address, string zone, string detail);
}
