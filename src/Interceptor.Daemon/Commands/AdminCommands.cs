using System.Globalization;
using System.Text.Json;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Control;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The admin verbs (status, users, log, block, unblock, limits): each one request to the running daemon over its
/// control socket, printed as a table, or as the response's data with --json.
/// Exit codes: 0 ok; 1 invalid configuration; 2 wrong usage (also an unknown or exempt user); 3 the daemon is not
/// running, refused the caller (not root, not in Control.AdminGroup), or could not do it (store or nft failing).
/// </summary>
public static class AdminCommands
{
    /// <summary>Beyond the daemon's own bounds: a block may wait for the alert command (Alerts.TimeoutSeconds).</summary>
    private static readonly TimeSpan BaseTimeout = ControlServer.QueryTimeout + ControlServer.RequestTimeout + TimeSpan.FromSeconds(20);

    public const string Help = """
        Admin commands (talk to the running daemon over Control.SocketPath; root or Control.AdminGroup only):
          status                       health, nft table check, per-user mail of the last hour and day
          users [--since 24h] [--limit 20]
                                       top senders
          log [--user USER] [--since 7d] [--limit 50]
                                       recent transactions, newest first
          block USER --reason TEXT     suspend USER (name or uid): the kernel refuses its port-25 connections
          unblock USER                 lift the suspension
          limits [USER]                effective limits and current usage; without USER the default and overrides
          Each takes --config FILE (to find the socket) and --json (the response data as JSON).
          Durations: 30m, 1h, 2d, 1w. Exit codes: 0 ok, 2 wrong usage or unknown user, 3 daemon not running,
          permission denied or the daemon could not do it.
        """;

    public static async Task<int> RunAsync(Arguments arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var request = BuildRequest(arguments);
        InterceptorOptions options;
        try
        {
            options = ConfigurationLoader.Load(arguments.ConfigPath);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // Admins who are not root need read access to the configuration: it names the control socket.
            await Console.Error.WriteLineAsync($"smtp-interceptor: cannot read the configuration {arguments.ConfigPath}: {e.Message} (it names Control.SocketPath; make it readable for the admin group or pass --config)");
            return 1;
        }

        ControlResponse response;
        try
        {
            response = await ControlClient.SendAsync(
                options.Control.SocketPath, options.Control.AdminGroup, request, BaseTimeout + options.Alerts.Timeout);
        }
        catch (ControlClientException e)
        {
            await Console.Error.WriteLineAsync($"smtp-interceptor: {e.Message}");
            return 3;
        }

        if (!response.Ok || response.Data is not { } data)
        {
            await Console.Error.WriteLineAsync(TerminalText.Escape($"smtp-interceptor: {request.Verb}: {response.Error ?? "the daemon gave no data"}"));
            return response.ErrorKind == ControlErrors.BadRequest ? 2 : 3;
        }

        string output;
        try
        {
            // The text is escaped once more as a whole: lines outside the tables (suspension reasons, store failures) hold
            // chosen text too. JSON is escaped by the serializer and stays exact.
            output = arguments.Json ? JsonSerializer.Serialize(data, ControlJson.Indented) + Environment.NewLine
                : TerminalText.EscapeKeepingNewlines(Render(request.Verb, data));
        }
        catch (JsonException e)
        {
            // A daemon of another version; --json still shows what it said.
            await Console.Error.WriteLineAsync($"smtp-interceptor: {request.Verb}: the daemon's answer does not have the expected fields ({e.Message}); try --json");
            return 3;
        }

        Console.Write(output);
        return 0;
    }

    /// <summary>The request for the command line, checked here so that mistakes get usage help without a round trip.</summary>
    /// <exception cref="UsageException">Wrong words or options for the verb.</exception>
    public static ControlRequest BuildRequest(Arguments arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var verb = arguments.Verb;
        var (minWords, maxWords, allowed) = verb switch
        {
            ControlVerbs.Status => (0, 0, Array.Empty<string>()),
            ControlVerbs.Users => (0, 0, ["since", "limit"]),
            ControlVerbs.Log => (0, 0, ["user", "since", "limit"]),
            ControlVerbs.Block => (1, 1, ["reason"]),
            ControlVerbs.Unblock => (1, 1, []),
            ControlVerbs.Limits => (0, 1, []),
            _ => throw new UsageException($"\"{verb}\" is not an admin command"),
        };
        var words = arguments.Positional;
        if (words.Count < minWords || words.Count > maxWords)
        {
            throw new UsageException(maxWords == 0 ? $"{verb} takes no USER word (got \"{words[0]}\")"
                : words.Count < minWords ? $"{verb} needs a USER (a name or a numeric uid)"
                : $"{verb} takes one USER, not {words.Count}");
        }

        var unexpected = arguments.Options.Keys.Where(k => !allowed.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
        {
            throw new UsageException($"{verb} does not take --{string.Join(", --", unexpected)}");
        }

        int? limit = null;
        if (arguments.Options.TryGetValue("limit", out var limitText))
        {
            limit = int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw new UsageException($"--limit: \"{limitText}\" is not a whole number between 1 and {ControlRequest.MaxLimit}");
        }

        var request = new ControlRequest
        {
            Verb = verb,
            User = words.Count > 0 ? words[0] : arguments.Options.GetValueOrDefault("user"),
            Reason = arguments.Options.GetValueOrDefault("reason"),
            Since = arguments.Options.GetValueOrDefault("since"),
            Limit = limit,
        };
        try
        {
            request.Validate();
        }
        catch (ControlException e)
        {
            throw new UsageException(e.Message);
        }

        return request;
    }

    /// <summary>The table for a verb's data (the same records the daemon serialized).</summary>
    public static string Render(string verb, JsonElement data) => verb switch
    {
        ControlVerbs.Status => AdminRendering.Status(Read<StatusData>(data)),
        ControlVerbs.Users => AdminRendering.Users(Read<UsersData>(data)),
        ControlVerbs.Log => AdminRendering.Log(Read<LogData>(data)),
        ControlVerbs.Block or ControlVerbs.Unblock => AdminRendering.Block(Read<BlockData>(data)),
        ControlVerbs.Limits => AdminRendering.Limits(Read<LimitsData>(data)),
        _ => throw new ArgumentOutOfRangeException(nameof(verb), verb, "not an admin verb"),
    };

    private static T Read<T>(JsonElement data) =>
        data.Deserialize<T>(ControlJson.Options) ?? throw new JsonException($"the daemon's {typeof(T).Name} is null");
}
