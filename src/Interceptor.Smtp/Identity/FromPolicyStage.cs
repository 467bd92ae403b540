using Interceptor.Core.Events;
using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// <c>FromPolicy</c>: the message's From: (exactly one address) and its envelope sender must be domains the connecting
/// user owns, or <c>FromPolicy.AllowedDomains</c>. <c>Log</c> relays and logs; <c>Refuse</c> answers 550 5.7.1 before the
/// upstream gets the final dot (the refusal is "refused at DATA" and counts toward automatic suspension). Reads only
/// the header section of the spool.
/// </summary>
public sealed class FromPolicyStage(FromPolicyOptions policy, bool includeSubdomains, IDomainMapSource domains, ILogger logger) : IMessageStage
{
    private readonly DomainMap _allowed = AllowedMap(policy.AllowedDomains);

    public string Name => "from-policy";

    public bool NeedsWholeMessage => true;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

    public async ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        if (spool is null)
        {
            throw new InvalidOperationException("the From policy needs the spooled message");
        }

        MessageHeaders headers;
        await using (var stream = spool.OpenRead())
        {
            headers = await MessageHeaders.ReadAsync(stream, token);
        }

        var user = message.Origin.User;
        var map = domains.Current;
        bool Owned(string domain) => map.Owns(user, domain, includeSubdomains) || _allowed.OwnerOf(domain, includeSubdomains) is not null;

        var from = FromCheck.Of(headers.FromDomains(), Owned);
        var (refusal, domain) = from.Problem switch
        {
            // Reading stopped at the cap: a From: further down (which a receiver may take) was never seen.
            _ when headers.TooLarge => ($"the message's header section is over {MessageHeaders.MaxBytes / 1024} KiB, so its From: cannot be checked; user {user} may send only as one of its own domains", "-"),
            FromProblem.NotOwned => ($"From: domain {from.Domain} is not a domain of user {user}", from.Domain!),
            FromProblem.MultipleFrom => ($"the message has {from.Addresses} From: addresses; user {user} may send only as one of its own domains", "-"),
            FromProblem.NoFrom => ($"the message has no readable From: address; user {user} may send only as one of its own domains", "-"),
            _ => EnvelopeRefusal(message.Sender, user, Owned),
        };
        if (refusal is null)
        {
            return StageVerdict.Continue;
        }

        var reason = headers.TooLarge ? "headers-too-large" : from.Problem == FromProblem.None ? "envelope-not-owned" : from.Reason;

        // The domain is the client's text: encoded in the line; the client's reply says it as it was.
        IdentityLog.FromNotOwned(logger, policy.Mode.ToString(), reason, FieldText.PercentEncode(domain), message.TransactionId, message.Origin.Uid, user, FieldText.Quote(refusal));
        var finding = new StageFinding($"from-policy {reason} {domain}");
        return policy.Mode == FromPolicyMode.Refuse ? StageVerdict.Refuse(new SmtpReply(550, "5.7.1", refusal), finding) : StageVerdict.Continue;
    }

    // The null sender (bounces) has no domain to check.
    private static (string? Refusal, string Domain) EnvelopeRefusal(string sender, string user, Func<string, bool> owned) =>
        FromCheck.DomainOf(sender) is { } domain && !owned(domain)
            ? ($"envelope sender domain {domain} is not a domain of user {user}", domain)
            : (null, "-");

    private static DomainMap AllowedMap(IReadOnlyList<string> allowed)
    {
        using var lines = new StringReader(allowed.Count == 0 ? "" : "anyone: " + string.Join(' ', allowed));
        return allowed.Count == 0 ? DomainMap.Empty : DomainMap.Parse(DomainSource.File, lines);
    }
}
