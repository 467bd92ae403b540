namespace Interceptor.Daemon.Control;

/// <summary>
/// The relay pool's admin verbs (issue 15) in the control protocol: <c>relays</c> (no fields), <c>relay</c> with an
/// action, a relay name and, to burn, a reason (<c>{"verb":"relay","action":"burn","relay":"relay1","reason":"…"}</c>),
/// and <c>host</c> with an action and, to burn, a reason (Auto mode). Checked here so ControlRequest stays one switch.
/// </summary>
public static class ControlActions
{
    public const string Burn = "burn";
    public const string Restore = "restore";

    public static readonly IReadOnlyList<string> All = [Burn, Restore];

    /// <summary>Longest relay name the configuration allows (Relay.Smarthosts[].Name).</summary>
    public const int MaxRelayNameLength = 32;

    /// <summary>Whether the request is a burn, whose reason is required and checked here.</summary>
    internal static bool TakesReason(ControlRequest request) =>
        request.Verb is ControlVerbs.Relay or ControlVerbs.Host && request.Action == Burn;

    /// <exception cref="ControlException">badRequest, saying what is wrong.</exception>
    internal static void Validate(ControlRequest request)
    {
        static ControlException Bad(string message) => new(ControlErrors.BadRequest, message);
        var pool = request.Verb is ControlVerbs.Relays or ControlVerbs.Relay or ControlVerbs.Host;
        if (!pool)
        {
            if (request.Action is not null || request.Relay is not null)
            {
                throw Bad($"{request.Verb} takes no action and no relay");
            }

            return;
        }

        if (request.User is not null)
        {
            throw Bad($"{request.Verb} takes no user");
        }

        if (request.Verb == ControlVerbs.Relays)
        {
            if (request.Action is not null || request.Relay is not null || request.Reason is not null)
            {
                throw Bad("relays takes no action, relay or reason");
            }

            return;
        }

        if (request.Action is null || !All.Contains(request.Action))
        {
            throw Bad($"{request.Verb} needs an action: {string.Join(" or ", All)} (not \"{request.Action}\")");
        }

        if (request.Verb == ControlVerbs.Relay)
        {
            if (string.IsNullOrWhiteSpace(request.Relay) || request.Relay.Length > MaxRelayNameLength || request.Relay.Any(c => c is <= ' ' or > '~'))
            {
                throw Bad($"relay {request.Action} needs the relay's NAME, as Relay.Smarthosts names it (1-{MaxRelayNameLength} printable characters)");
            }
        }
        else if (request.Relay is not null)
        {
            throw Bad("host takes no relay name: it acts on the host's own address");
        }

        if (request.Action == Burn)
        {
            if (string.IsNullOrWhiteSpace(request.Reason))
            {
                throw Bad($"{request.Verb} burn needs --reason TEXT: it is kept with the relay's state, shown by relays and passed to the alert command");
            }

            ControlRequest.CheckReasonText(request.Reason);
        }
        else if (request.Reason is not null)
        {
            throw Bad($"{request.Verb} restore takes no reason");
        }
    }
}
