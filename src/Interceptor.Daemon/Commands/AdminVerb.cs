using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Interceptor.Daemon.Control;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// One admin verb: a command that sends the control request of the same name to the running daemon. It declares only
/// the options its request has fields for; what the values must look like (durations, limit range, a printable reason)
/// is <see cref="ControlRequest.Validate"/>'s, the same check the daemon runs on what arrives on its socket.
/// </summary>
public sealed class AdminVerb(
    string verb,
    string description,
    Argument<string?>? userWord = null,
    Option<string?>? user = null,
    Option<string?>? reason = null,
    Option<string?>? since = null,
    Option<int?>? limit = null,
    Argument<string?>? idWord = null,
    Argument<string?>? actionWord = null,
    Argument<string?>? relayWord = null,
    Option<bool>? check = null)
{
    /// <summary>The command with the words and options its request has fields for (the others are not declared).</summary>
    public Command Command { get; } = Declare(new Command(verb, description), actionWord, relayWord, userWord, idWord, user, reason, since, limit, check);

    /// <summary>The request the parsed command line asks for; check it with <see cref="ControlRequest.Validate"/>.</summary>
    public ControlRequest RequestOf(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new ControlRequest
        {
            Verb = Command.Name,
            User = Value<string?>(result, "USER") ?? Value<string?>(result, "--user"),
            Reason = Value<string?>(result, "--reason"),
            Since = Value<string?>(result, "--since"),
            Limit = Value<int?>(result, "--limit"),
            Id = Value<string?>(result, "ID"),
            Action = Value<string?>(result, "ACTION"),
            Relay = Value<string?>(result, "NAME"),
            Check = Value<bool>(result, "--check") ? true : null,
        };
    }

    /// <summary>The value of the word or option named so, when this verb declares it.</summary>
    private T? Value<T>(ParseResult result, string name) =>
        Command.Children.Any(c => c.Name == name) ? result.GetValue<T>(name) : default;

    /// <summary>
    /// The admin verbs, in the order help lists them. Adding one: a ControlVerbs constant, its case in
    /// ControlRequest.Validate and AdminService, and one line here naming the fields its request uses.
    /// </summary>
    public static IReadOnlyList<AdminVerb> CreateAll() =>
    [
        new(ControlVerbs.Status, "health, nft table check, per-user mail of the last hour and day"),
        new(ControlVerbs.Users, "top senders", since: Since("24h"), limit: Limit(AdminService.DefaultUsersLimit)),
        new(
            ControlVerbs.Log,
            "recent transactions, newest first",
            user: new Option<string?>("--user") { HelpName = "USER", Description = "only this user's (a name or a numeric uid)" },
            since: Since("7d"),
            limit: Limit(AdminService.DefaultLogLimit)),
        new(
            ControlVerbs.Block,
            "suspend USER (name or uid): the kernel refuses its port-25 connections",
            userWord: UserWord(required: true),
            reason: new Option<string?>("--reason")
            {
                HelpName = "TEXT",
                Required = true,
                Description = "why; kept with the suspension and shown in the refusal the user's mail client gets (printable ASCII, one line)",
            }),
        new(ControlVerbs.Unblock, "lift the suspension", userWord: UserWord(required: true)),
        new(ControlVerbs.Limits, "effective limits and current usage; without USER the default and overrides", userWord: UserWord(required: false)),
        new(ControlVerbs.Held, "messages held for review (all, or --user's), oldest first", user: HeldUser("only this user's"), since: Since("all")),
        new(ControlVerbs.Release, "deliver a held message (ID) or all of --user's, to where it was going", user: HeldUser("every held message of this user"), idWord: IdWord()),
        new(ControlVerbs.Delete, "delete a held message (ID) or all of --user's, undelivered", user: HeldUser("every held message of this user"), idWord: IdWord()),
        new(ControlVerbs.Relays, "the relay pool: each relay's role, state, messages of the last hour, last DNSBL result"),
        new(ControlVerbs.Relay, "burn a relay (out of rotation, a standby promoted) or restore it", reason: PoolReason(), actionWord: ActionWord(), relayWord: RelayWord()),
        new(ControlVerbs.Host, "Auto mode: burn the host's own address (mail goes through the pool) or restore it", reason: PoolReason(), actionWord: ActionWord()),
        new(
            ControlVerbs.Domains,
            "each user's mail domains (Domains.Source); with --check their DKIM, SPF and DMARC records",
            user: new Option<string?>("--user") { HelpName = "USER", Description = "only this user's domains (a name or a numeric uid)" },
            check: new Option<bool>("--check") { Description = "look up each domain's DKIM key, SPF and DMARC records (every lookup bounded)" }),
    ];

    private static Option<string?> HeldUser(string what) => new("--user") { HelpName = "USER", Description = $"{what} (a name or a numeric uid)" };

    private static Argument<string?> IdWord() => new("ID")
    {
        Arity = ArgumentArity.ZeroOrOne,
        Description = "a held message's id, as `held` lists it",
    };

    private static Argument<string?> ActionWord() => new("ACTION")
    {
        Arity = ArgumentArity.ExactlyOne,
        Description = "burn or restore",
    };

    private static Argument<string?> RelayWord() => new("NAME")
    {
        Arity = ArgumentArity.ExactlyOne,
        Description = "the relay's name in Relay.Smarthosts",
    };

    private static Option<string?> PoolReason() => new("--reason")
    {
        HelpName = "TEXT",
        Description = "burn: why (printable ASCII, one line); shown by relays and passed to the alert command",
    };

    private static Command Declare(Command command, params Symbol?[] symbols)
    {
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument argument:
                    command.Arguments.Add(argument);
                    break;
                case Option option:
                    command.Options.Add(option);
                    break;
            }
        }

        return command;
    }

    private static Argument<string?> UserWord(bool required)
    {
        var word = new Argument<string?>("USER")
        {
            Arity = required ? ArgumentArity.ExactlyOne : ArgumentArity.ZeroOrOne,
            Description = "a user name or a numeric uid",
        };

        // The parser hands a word it does not know as an option to the USER argument; no user name starts with "-".
        word.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && result.Tokens[0].Value is var text && text.StartsWith('-'))
            {
                result.AddError($"{(result.Parent as CommandResult)?.Command.Name} does not take {text} (and a user name never starts with \"-\")");
            }
        });
        return word;
    }

    private static Option<string?> Since(string fallback) => new("--since")
    {
        HelpName = "DURATION",
        Description = $"how far back: 30m, 1h, 2d, 1w (default {fallback})",
    };

    private static Option<int?> Limit(int fallback) => new("--limit")
    {
        HelpName = "N",
        Description = $"at most N lines (default {fallback}, at most {ControlRequest.MaxLimit})",

        // Digits only, so "-3" or "1e3" name --limit in the error instead of surprising as a conversion message.
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var limit))
            {
                return limit;
            }

            result.AddError($"--limit: \"{text}\" is not a whole number between 1 and {ControlRequest.MaxLimit}");
            return null;
        },
    };
}
