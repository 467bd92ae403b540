using Interceptor.Core.Events;
using System.Collections.Concurrent;
using Interceptor.Core.Domains;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// Signs a message with DKIM for its From: domain when, and only when, it has exactly one From: address, the connecting
/// user owns that domain (or the parent whose key is used), a key exists and no signature for the domain is on it yet.
/// Otherwise it is relayed unsigned and the log says why (<c>dkim=none reason=…</c>). The last stage before the upstream:
/// the signature covers the spool's bytes (dot-unstuffed, as the recipient sees them), which the pipeline replays below
/// the signature; the trace header between them is not signed. One pass over the spool, one line in memory.
/// </summary>
public sealed class DkimSigningStage(
    DkimKeyStore keys,
    IDomainMapSource domains,
    bool includeSubdomains,
    long maxBytes,
    ILogger logger,
    Action<string, string>? keyAlert = null,
    TimeProvider? time = null) : IMessageStage
{
    /// <summary>One alert per domain and key problem this often, however many messages hit it.</summary>
    public static readonly TimeSpan AlertInterval = TimeSpan.FromHours(1);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _alerted = new(StringComparer.Ordinal);

    public string Name => "dkim";

    public bool NeedsWholeMessage => true;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

    public async ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        if (spool is null)
        {
            throw new InvalidOperationException("DKIM signing needs the spooled message");
        }

        var origin = message.Origin;
        if (spool.Length > maxBytes)
        {
            return Unsigned(message, "too-large", "-");
        }

        await using var stream = spool.OpenRead();
        using var reader = new SpoolLineReader(stream);
        var headers = await MessageHeaders.ReadAsync(reader, token);
        if (headers.TooLarge)
        {
            return Unsigned(message, "headers-too-large", "-");
        }

        var map = domains.Current;
        if (DkimSignatureBuilder.TooOften(headers.Fields) is { } repeated)
        {
            // The line's domain= is the From: domain, as in every dkim=none line; From: fields are parsed only when 50 or fewer
            // (the repeated name may be another, found first).
            var fromFields = headers.Fields.Count(f => f.Is("From"));
            var single = fromFields > DkimSignatureBuilder.MaxOccurrences ? default : FromCheck.Of(headers.FromDomains(), _ => false);
            return Unsigned(message, "too-many-headers", single.Domain ?? "-");
        }

        var from = FromCheck.Of(headers.FromDomains(), d => map.Owns(origin.User, d, includeSubdomains));
        if (from.Problem != FromProblem.None)
        {
            return Unsigned(message, from.Reason, from.Domain ?? "-");
        }

        if (headers.SigningDomains().Any(d => string.Equals(DomainMap.Normalise(d), from.Domain, StringComparison.Ordinal)))
        {
            return Unsigned(message, "already-signed", from.Domain!);
        }

        var (domain, key) = FindKey(from.Domain!, origin.User, map);
        if (key is null)
        {
            return Unsigned(message, "no-key", from.Domain!);
        }

        using var body = new RelaxedBodyHasher();
        if (headers.BodyStart is { } first)
        {
            // A header section ended by a line that is no field: verifiers hash that line as the body's first.
            body.AddLine(first);
        }

        while (await reader.ReadLineAsync(token))
        {
            body.AddLine(reader.Line);
        }

        var signature = DkimSignatureBuilder.Build(headers.Fields, body.Finish(), domain, keys.Selector, key, _time.GetUtcNow().ToUnixTimeSeconds());
        IdentityLog.Signed(logger, domain, keys.Selector, key.Algorithm, message.TransactionId, origin.Uid, origin.User);
        return StageVerdict.ContinueWith(signature);
    }

    /// <summary>
    /// The From: domain's key, else its nearest parent's that the same user owns (shop.example.com signed as d=example.com,
    /// which DMARC's relaxed alignment accepts). Never a key of a domain the user does not own.
    /// </summary>
    private (string Domain, DkimKey? Key) FindKey(string fromDomain, string user, DomainMap map)
    {
        for (var domain = fromDomain; map.Owns(user, domain, includeSubdomains); domain = domain[(domain.IndexOf('.', StringComparison.Ordinal) + 1)..])
        {
            var (result, key, problem) = keys.Find(domain);
            if (result == KeyLookup.Found)
            {
                return (domain, key);
            }

            if (result == KeyLookup.Unusable)
            {
                Alert(domain, problem!);
                return (domain, null);
            }

            if (!domain.Contains('.', StringComparison.Ordinal))
            {
                break;
            }
        }

        return (fromDomain, null);
    }

    private void Alert(string domain, string problem)
    {
        IdentityLog.KeyUnusable(logger, domain, problem);
        var now = _time.GetUtcNow();
        var key = domain + "\n" + problem;
        if (_alerted.TryGetValue(key, out var last) && now - last < AlertInterval)
        {
            return;
        }

        _alerted[key] = now;
        keyAlert?.Invoke(domain, problem);
    }

    private StageVerdict Unsigned(MessageContext message, string reason, string domain)
    {
        // The domain is the client's text (its From:): encoded, so that it cannot fake a field of the line.
        IdentityLog.Unsigned(logger, reason, FieldText.PercentEncode(domain), message.TransactionId, message.Origin.Uid, message.Origin.User);
        return StageVerdict.Continue;
    }
}
