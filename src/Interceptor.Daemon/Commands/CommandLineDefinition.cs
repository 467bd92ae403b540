using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Interceptor.Daemon.Control;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The command line, declared once (System.CommandLine): every verb with its options, arguments and descriptions.
/// Parsing, usage errors (exit 2), `help` and `--help` (<see cref="CommandHelp"/>) and the man page check all read
/// this tree. Adding a daemon verb is one <see cref="Verb"/> line below; an admin verb is one line in
/// <see cref="AdminVerb.CreateAll"/>; then describe it in packaging/smtp-interceptor.1 (a unit test says what is missing).
/// </summary>
public sealed class CommandLineDefinition
{
    public const string ProgramName = "smtp-interceptor";

    /// <summary>Exit code of a wrong command line, whatever the verb.</summary>
    public const int UsageExitCode = 2;

    public const string Description = """
        smtp-interceptor: per-user SMTP interception for shared hosts.
        Outbound port-25 connections of customer users are redirected by nftables to this daemon, which
        names the Unix user behind each one, relays the mail in lock-step to where it was going, and
        stamps it with an X-Interceptor-Origin header.
        """;

    public const string Epilogue = """
        Environment variables override keys: SMTPI_Relay__HeloName=mx.example.
        Exit codes: 0 ok, 1 invalid configuration, 2 wrong usage (also an unknown user), 3 the system refused
        (nft, socket, permissions, the daemon not running or unable to do it).
        """;

    public const string AdminHeading = "Admin commands (talk to the running daemon over Control.SocketPath; root or Control.AdminGroup only):";

    private readonly Dictionary<Command, AdminVerb> _admin = [];

    private CommandLineDefinition(ILoggerFactory loggers, TextWriter output)
    {
        Output = output;
        Root = new RootCommand(Description) { Config };

        // Predictable for scripts: no [directives], and an @word (a reason, say) is never read as a response file.
        Root.Directives.Clear();
        Parser = new ParserConfiguration { ResponseFileTokenReplacer = null };
        foreach (var builtIn in Root.Options.Where(o => o is HelpOption or VersionOption).ToList())
        {
            Root.Options.Remove(builtIn);
        }

        Root.Options.Add(new HelpOption("--help", "-h") { Description = "this text; after a command, its options", Action = new Act(Help, clearsErrors: true) });
        Root.Options.Add(new VersionOption("--version") { Description = "the version", Action = new Act(Version) });
        Root.Options.Add(new Option<bool>("--demo") { Hidden = true, Action = new Act(_ => DemoCommand.RunAsync(new Arguments("demo", null, false))) });

        DaemonVerbs =
        [
            // `run` stays a thin call: the daemon's start-up and lifetime are RunCommand's.
            Verb("run", "run the daemon in the foreground: install the nft table, relay mail, log JSON lines", a => RunCommand.RunAsync(a, loggers)),
            WithUnitSettings(WithDaemonUser(Verb("check-config", "validate the configuration; exit 0, or 1 naming each bad key", a => Task.FromResult(RulesCommands.CheckConfig(a))))),
            WithDaemonUser(Verb("rules", "print the nft ruleset the daemon would install", a => Task.FromResult(RulesCommands.PrintRules(a)))),
            Verb("remove-rules", "delete the daemon's nft table (after this, port 25 is no longer intercepted)", RulesCommands.RemoveRulesAsync),
            Added(ClientCaCommand.Declare(ArgumentsOf)),
            Verb("demo", "self-contained demonstration in a throwaway network namespace (needs root, nft, swaks and Postfix's smtp-sink)", DemoCommand.RunAsync),
            Verb("help", "this text", _ => Task.FromResult(Help(Root))),
            Verb("version", "the version", _ => Version()),
        ];
        foreach (var admin in AdminVerb.CreateAll())
        {
            admin.Command.Options.Add(Json);
            admin.Command.SetAction((result, _) => AdminCommands.RunAsync(ArgumentsOf(result), admin.RequestOf(result)));
            _admin[admin.Command] = admin;
            Root.Subcommands.Add(admin.Command);
        }
    }

    public RootCommand Root { get; }

    public ParserConfiguration Parser { get; }

    /// <summary>On every verb: the configuration (admin verbs read Control.SocketPath from it).</summary>
    public Option<string?> Config { get; } = new("--config", "-c")
    {
        Recursive = true,
        HelpName = "FILE",
        Description = $"the configuration (default {Arguments.DefaultConfigPath} when it exists, else the built-in defaults)",
    };

    /// <summary>
    /// On check-config and rules: the user the daemon runs as (<see cref="DaemonAccount"/>). Not <c>--user</c>, which on
    /// the admin verbs names a customer: `rules --user alice` must not quietly exempt her.
    /// </summary>
    public Option<string?> DaemonUser { get; } = new("--daemon-user")
    {
        HelpName = "NAME",
        Description = $"the user the daemon runs as, to check or render for (default: yours if you hold CAP_NET_ADMIN as a unit's User= does, else {DaemonAccount.PackagedName} where that account exists, else yours)",
    };

    /// <summary>
    /// On check-config: the groups a unit adds to the daemon's user's own (SupplementaryGroups=), so that the
    /// directories and files it may reach through them are judged as the kernel will (the postinst passes the unit's).
    /// </summary>
    public Option<string?> DaemonGroups { get; } = new("--daemon-groups")
    {
        HelpName = "GROUPS",
        Description = "groups the daemon runs in besides its user's own, as a unit's SupplementaryGroups= gives them (names or gids, separated by spaces or commas)",
    };

    /// <summary>
    /// On check-config: a unit's Group=, which systemd gives the daemon instead of its user's primary group (with the
    /// groups the group database lists the user in), so a file reachable only through the user's own group is not.
    /// </summary>
    public Option<string?> DaemonGroup { get; } = new("--daemon-group")
    {
        HelpName = "GROUP",
        Description = "the daemon's primary group instead of its user's, as a unit's Group= sets it (a name or gid; the user's own primary group is then held only if the group database lists the user in it)",
    };

    /// <summary>
    /// On check-config: the unit's ProtectHome= and PrivateTmp=, which hide directories from the daemon or give it its own,
    /// where root finds a file the daemon will not (the postinst passes the unit's, as systemctl show prints them).
    /// </summary>
    public Option<string?> DaemonSandbox { get; } = new("--daemon-sandbox")
    {
        HelpName = "SETTINGS",
        Description = "the unit's sandbox settings that hide files from the daemon, e.g. \"ProtectHome=yes PrivateTmp=yes\": a file it reads at start must not be where they hide it",
    };

    /// <summary>On every admin verb.</summary>
    public Option<bool> Json { get; } = new("--json") { Description = "admin commands: print the daemon's answer as JSON" };

    /// <summary>The verbs that work on this host (configuration, nft, the daemon itself), in the order help lists them.</summary>
    public IReadOnlyList<Command> DaemonVerbs { get; }

    /// <summary>The verbs answered by the running daemon over its control socket, in the order help lists them.</summary>
    public IEnumerable<Command> AdminVerbs => _admin.Keys;

    /// <summary>Where help and version go: standard output unless a test captures it.</summary>
    public TextWriter Output { get; }

    public static CommandLineDefinition Create(ILoggerFactory loggers, TextWriter? output = null)
    {
        ArgumentNullException.ThrowIfNull(loggers);
        return new(loggers, output ?? Console.Out);
    }

    /// <summary>
    /// Parses <paramref name="args"/> and returns the usage errors: the parser's (unknown words, missing or surplus
    /// values) and, for an admin verb, what <see cref="ControlRequest.Validate"/> finds in the values.
    /// </summary>
    public (ParseResult Result, IReadOnlyList<string> Errors) Parse(IReadOnlyList<string> args)
    {
        var result = Root.Parse(args, Parser);
        if (result.Action is CommandLineAction { ClearsParseErrors: true })
        {
            return (result, []);
        }

        if (result.Errors.Count > 0)
        {
            return (result, [.. result.Errors.Select(e => e.Message)]);
        }

        if (AdminRequestOf(result) is { } request)
        {
            try
            {
                request.Validate();
            }
            catch (ControlException e)
            {
                return (result, [e.Message]);
            }
        }

        return (result, []);
    }

    /// <summary>Runs the command line: a usage error prints what is wrong and the verb's help on stderr (exit 2).</summary>
    public async Task<int> InvokeAsync(IReadOnlyList<string> args, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var (result, errors) = Parse(args);
        if (errors.Count > 0)
        {
            foreach (var message in errors)
            {
                await error.WriteLineAsync($"{ProgramName}: {message}");
            }

            await error.WriteLineAsync();
            CommandHelp.Write(this, result.CommandResult.Command, error);
            return UsageExitCode;
        }

        // Our own exit codes and signal handling: no catch-all (exceptions reach Program), and no SIGINT/SIGTERM
        // handler of the parser's, which would race `run`'s orderly shutdown.
        return await result.InvokeAsync(new InvocationConfiguration
        {
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
            Output = Output,
        });
    }

    private Command Verb(string name, string description, Func<Arguments, Task<int>> handler)
    {
        var command = new Command(name, description);
        command.SetAction((result, _) => handler(ArgumentsOf(result)));
        Root.Subcommands.Add(command);
        return command;
    }

    private Command WithDaemonUser(Command command)
    {
        if (DaemonUser.Validators.Count == 0)
        {
            DaemonUser.Validators.Add(result =>
            {
                if (result.GetValueOrDefault<string?>() is { } name && KnownUserProblem(name) is { } problem)
                {
                    result.AddError($"--daemon-user: {problem}");
                }
            });
        }

        command.Options.Add(DaemonUser);
        return command;
    }

    // The unit's settings, as the postinst passes them. Not validated here: a group the unit names that does not exist is
    // a problem of the unit's, which check-config names among the others (exit 1), not a usage error that would stop it.
    private Command WithUnitSettings(Command command)
    {
        command.Options.Add(DaemonGroup);
        command.Options.Add(DaemonGroups);
        command.Options.Add(DaemonSandbox);
        return command;
    }

    // A name from the user database, or a number as a uid (as Interception.ExemptUsers takes them).
    private static string? KnownUserProblem(string name)
    {
        if (name.Length == 0)
        {
            return "an empty name";
        }

        try
        {
            return Linux.UserDatabase.UidOfNameOrNumber(name) is null ? Linux.UserDatabase.NoSuchUser(name) : null;
        }
        catch (Linux.LinuxInteropException e)
        {
            return $"the user database could not be read ({e.Message})";
        }
    }

    private Command Added(Command command)
    {
        Root.Subcommands.Add(command);
        return command;
    }

    /// <summary>The control request of an admin verb's command line; null for the other verbs.</summary>
    public ControlRequest? AdminRequestOf(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return _admin.TryGetValue(result.CommandResult.Command, out var admin) ? admin.RequestOf(result) : null;
    }

    /// <summary>What the verb's handler gets: its name, the configuration file, --json, --daemon-user, and the unit's settings.</summary>
    public Arguments ArgumentsOf(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var command = result.CommandResult.Command;
        return new Arguments(
            command.Name,
            Arguments.ConfigOrDefault(result.GetValue(Config)),
            command.Options.Contains(Json) && result.GetValue(Json),
            command.Options.Contains(DaemonUser) ? result.GetValue(DaemonUser) : null,
            command.Options.Contains(DaemonGroups) ? result.GetValue(DaemonGroups) : null,
            command.Options.Contains(DaemonSandbox) ? result.GetValue(DaemonSandbox) : null,
            command.Options.Contains(DaemonGroup) ? result.GetValue(DaemonGroup) : null);
    }

    private int Help(ParseResult result) => Help(result.CommandResult.Command);

    private int Help(Command command)
    {
        CommandHelp.Write(this, command, Output);
        return 0;
    }

    private Task<int> Version(ParseResult? result = null)
    {
        Output.WriteLine(AdminService.Version);
        return Task.FromResult(0);
    }

    /// <summary>An option's action (help, version, the hidden --demo) that ends the command line, as the built-in ones do.</summary>
    private sealed class Act : AsynchronousCommandLineAction
    {
        private readonly Func<ParseResult, Task<int>> _run;
        private readonly bool _clearsErrors;

        public Act(Func<ParseResult, Task<int>> run, bool clearsErrors = false)
        {
            _run = run;
            _clearsErrors = clearsErrors;
        }

        public Act(Func<ParseResult, int> run, bool clearsErrors = false)
            : this(r => Task.FromResult(run(r)), clearsErrors)
        {
        }

        public override bool ClearsParseErrors => _clearsErrors;

        public override Task<int> InvokeAsync(ParseResult parseResult, CancellationToken cancellationToken = default) => _run(parseResult);
    }
}
