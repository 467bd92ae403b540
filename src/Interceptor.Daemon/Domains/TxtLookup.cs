using System.Net;
using DnsClient;

namespace Interceptor.Daemon.Domains;

/// <summary>What a TXT lookup found: the records (each one's strings joined), none, or why there is no answer.</summary>
public sealed record TxtAnswer(IReadOnlyList<string> Records, string? Error)
{
    public static TxtAnswer None { get; } = new([], null);

    public static TxtAnswer Of(params string[] records) => new(records, null);

    public static TxtAnswer Failed(string error) => new([], error);
}

/// <summary>Looks up TXT records (a seam for the checks' unit tests).</summary>
public interface ITxtLookup
{
    Task<TxtAnswer> TxtAsync(string name, CancellationToken cancellationToken);
}

/// <summary>
/// TXT lookups through <c>Burn.DnsServer</c> or the system's resolver, bounded as the DNSBL checks are (3 s a try, one
/// retry, no cache). NXDOMAIN and an empty answer are "no record"; a timeout, SERVFAIL or REFUSED is an error, named.
/// </summary>
public sealed class DnsTxtLookup : ITxtLookup
{
    private readonly LookupClient _client;

    public DnsTxtLookup(IPEndPoint? server)
    {
        _client = Smtp.Pool.DnsblChecker.BoundedClient(server);
    }

    public async Task<TxtAnswer> TxtAsync(string name, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, QueryType.TXT, QueryClass.IN, cancellationToken);
        }
        catch (DnsResponseException e)
        {
            return TxtAnswer.Failed(e.Code == DnsResponseCode.ConnectionTimeout ? "timeout" : e.Code.ToString());
        }

        if (response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
        {
            return TxtAnswer.None;
        }

        if (response.HasError)
        {
            return TxtAnswer.Failed(response.Header.ResponseCode.ToString());
        }

        return new TxtAnswer([.. response.Answers.TxtRecords().Select(r => string.Concat(r.Text))], null);
    }
}
