using System.Text.Json;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Control;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The admin verbs (status, users, log, block, unblock, limits; declared in <see cref="AdminVerb"/>): each one request
/// to the running daemon over its control socket, printed as a table, or as the response's data with --json.
/// Exit codes: 0 ok; 1 invalid configuration; 2 wrong usage (also an unknown or exempt user); 3 the daemon is not
/// running, refused the caller (not root, not in Control.AdminGroup), or could not do it (store or nft failing).
/// </summary>
public static class AdminCommands
{
    /// <summary>Beyond the daemon's own bounds: a block may wait for the alert command (Alerts.TimeoutSeconds).</summary>
    private static readonly TimeSpan BaseTimeout = ControlServer.QueryTimeout + ControlServer.RequestTimeout + TimeSpan.FromSeconds(20);

    /// <param name="request">Checked by the command line already (<see cref="CommandLineDefinition.Parse"/>).</param>
    public static async Task<int> RunAsync(Arguments arguments, ControlRequest request)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(request);
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

    /// <summary>The table for a verb's data (the same records the daemon serialized).</summary>
    public static string Render(string verb, JsonElement data) => verb switch
    {
        ControlVerbs.Status => AdminRendering.Status(Read<StatusData>(data)),
        ControlVerbs.Users => AdminRendering.Users(Read<UsersData>(data)),
        ControlVerbs.Log => AdminRendering.Log(Read<LogData>(data)),
        ControlVerbs.Block or ControlVerbs.Unblock => AdminRendering.Block(Read<BlockData>(data)),
        ControlVerbs.Limits => AdminRendering.Limits(Read<LimitsData>(data)),
        ControlVerbs.Held => HoldRendering.Held(Read<HeldData>(data)),
        ControlVerbs.Release or ControlVerbs.Delete => HoldRendering.Change(Read<HoldChangeData>(data)),
        ControlVerbs.Relays => AdminRendering.Relays(Read<RelaysData>(data)),
        ControlVerbs.Relay or ControlVerbs.Host => AdminRendering.RelayChange(Read<RelayChangeData>(data)),
        ControlVerbs.Domains => DomainsRendering.Domains(Read<DomainsData>(data)),
        _ => throw new ArgumentOutOfRangeException(nameof(verb), verb, "not an admin verb"),
    };

    private static T Read<T>(JsonElement data) =>
        data.Deserialize<T>(ControlJson.Options) ?? throw new JsonException($"the daemon's {typeof(T).Name} is null");
}
