namespace Interceptor.Smtp.Identity;

/// <summary>Why a message's From: does not name one domain of the sending user.</summary>
public enum FromProblem
{
    None,

    /// <summary>No From: address, or one that cannot be parsed (treated as not owned).</summary>
    NoFrom,

    /// <summary>Several From: addresses (or fields): no single owner to vouch for (treated as not owned).</summary>
    MultipleFrom,

    NotOwned,
}

/// <summary>The From: check's result: the problem, the single From: domain when there is one, and the addresses counted.</summary>
public readonly record struct FromCheck(FromProblem Problem, string? Domain, int Addresses)
{
    /// <summary>The log's word: <c>no-from</c>, <c>multiple-from</c>, <c>not-owned</c>.</summary>
    public string Reason => Problem switch
    {
        FromProblem.NoFrom => "no-from",
        FromProblem.MultipleFrom => "multiple-from",
        FromProblem.NotOwned => "not-owned",
        _ => "owned",
    };

    /// <summary>Exactly one From: mailbox, whose domain <paramref name="owned"/> accepts.</summary>
    public static FromCheck Of(IReadOnlyList<string> fromDomains, Func<string, bool> owned) => fromDomains.Count switch
    {
        0 => new(FromProblem.NoFrom, null, 0),
        > 1 => new(FromProblem.MultipleFrom, null, fromDomains.Count),
        _ when fromDomains[0].Length == 0 => new(FromProblem.NoFrom, null, 1),
        _ => new(owned(fromDomains[0]) ? FromProblem.None : FromProblem.NotOwned, Core.Domains.DomainMap.Normalise(fromDomains[0]), 1),
    };

    /// <summary>The domain of an envelope address (after the last @), or null for the null sender and bare names.</summary>
    public static string? DomainOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 || at == address.Length - 1 ? null : Core.Domains.DomainMap.Normalise(address[(at + 1)..]);
    }
}
