namespace Interceptor.Daemon.Commands;

/// <summary>A wrong command line; the message says what to type instead.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The verb and its options: small enough not to need a parser library.</summary>
public sealed record Arguments(string Verb, string? ConfigPath, bool Json)
{
    /// <summary>Words after the verb that are not options (e.g. the USER of `block USER`).</summary>
    public IReadOnlyList<string> Positional { get; init; } = [];

    /// <summary>Other options with a value, by name without dashes (e.g. "reason", "user", "since").</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();

    /// <summary>Options that take a value, besides --config.</summary>
    private static readonly string[] ValueOptions = ["reason", "user", "since", "limit"];

    public const string DefaultConfigPath = "/etc/smtp-interceptor/smtp-interceptor.json";

    public static Arguments Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0)
        {
            throw new UsageException("missing command");
        }

        var verb = args[0] switch
        {
            "--help" or "-h" => "help",
            "--version" => "version",
            "--demo" => "demo",
            var v => v,
        };
        string? config = null;
        var json = false;
        var positional = new List<string>();
        var options = new Dictionary<string, string>();
        for (var i = 1; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--config" or "-c" when i + 1 < args.Count:
                    config = args[++i];
                    break;
                case "--config" or "-c":
                    throw new UsageException("--config needs a file name");
                case "--json":
                    json = true;
                    break;
                case var name when name.StartsWith("--", StringComparison.Ordinal) && ValueOptions.Contains(name[2..]):
                    if (i + 1 >= args.Count)
                    {
                        throw new UsageException($"{name} needs a value");
                    }

                    options[name[2..]] = args[++i];
                    break;
                case var word when !word.StartsWith('-'):
                    positional.Add(word);
                    break;
                default:
                    throw new UsageException($"unknown argument \"{args[i]}\" for {verb}");
            }
        }

        // Without --config the packaged file is used when present; otherwise the built-in defaults ({}).
        config ??= File.Exists(DefaultConfigPath) ? DefaultConfigPath : null;
        return new Arguments(verb, config, json) { Positional = positional, Options = options };
    }

    public const string Help = """
        smtp-interceptor: per-user SMTP interception for shared hosts.
        Outbound port-25 connections of customer users are redirected by nftables to this daemon, which
        names the Unix user behind each one, relays the mail in lock-step to where it was going, and
        stamps it with an X-Interceptor-Origin header.

        Usage: smtp-interceptor COMMAND [--config FILE]
          run            run the daemon in the foreground: install the nft table, relay mail, log JSON lines
          check-config   validate the configuration; exit 0, or 1 naming each bad key
          rules          print the nft ruleset the daemon would install
          remove-rules   delete the daemon's nft table (after this, port 25 is no longer intercepted)
          demo           self-contained demonstration in a throwaway network namespace (needs root,
                         nft, swaks and Postfix's smtp-sink)
          help           this text
          version        the version

        FILE defaults to /etc/smtp-interceptor/smtp-interceptor.json when it exists, else built-in defaults.
        Environment variables override keys: SMTPI_Relay__HeloName=mx.example.
        Exit codes: 0 ok, 1 invalid configuration, 2 wrong usage, 3 the system refused (nft, socket, permissions).
        """;
}
