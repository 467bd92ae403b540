using System.CommandLine;
using System.CommandLine.Help;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// Help text rendered from <see cref="CommandLineDefinition"/>: the whole command list for `help` and `--help`, or one
/// verb with its options for `VERB --help` and after a usage error.
/// </summary>
public static class CommandHelp
{
    /// <summary>Usage lines up to this width keep their description on the same line.</summary>
    private const int Column = 30;

    /// <summary>A verb's own words and options as typed, e.g. "log [--user USER] [--since DURATION] [--limit N]".</summary>
    public static string Usage(CommandLineDefinition definition, Command verb)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(verb);
        var words = verb.Arguments.Where(a => !a.Hidden)
            .Select(a => a.Arity.MinimumNumberOfValues > 0 ? a.Name : $"[{a.Name}]");
        var options = OwnOptions(definition, verb)
            .Select(o => o.Required ? Label(o) : $"[{Label(o)}]");
        return string.Join(' ', [verb.Name, .. words, .. options]);
    }

    /// <summary>The options a verb declares itself (not --config, --json or --help, which many verbs share).</summary>
    public static IEnumerable<Option> OwnOptions(CommandLineDefinition definition, Command verb)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(verb);
        return verb.Options.Where(o => !o.Hidden && o != definition.Json && o != definition.Config && o is not HelpOption);
    }

    public static void Write(CommandLineDefinition definition, Command command, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(output);
        if (command is RootCommand)
        {
            WriteAll(definition, output);
            return;
        }

        var shared = command.Options.Contains(definition.Json) ? " [--json]" : "";
        output.WriteLine($"Usage: {CommandLineDefinition.ProgramName} {Usage(definition, command)}{shared} [--config FILE]");
        output.WriteLine($"  {command.Description}");
        output.WriteLine();
        output.WriteLine("Options:");
        var options = command.Options.Where(o => !o.Hidden && o is not HelpOption).Append(definition.Config);
        WriteRows(output, [.. command.Arguments.Select(a => (a.Name, a.Description ?? "")), .. options.Select(o => (Names(o), o.Description ?? ""))]);
    }

    private static void WriteAll(CommandLineDefinition definition, TextWriter output)
    {
        output.WriteLine(CommandLineDefinition.Description);
        output.WriteLine();
        output.WriteLine($"Usage: {CommandLineDefinition.ProgramName} COMMAND [--config FILE]");
        WriteRows(output, [.. definition.DaemonVerbs.Select(v => (Usage(definition, v), v.Description ?? ""))]);
        output.WriteLine();
        output.WriteLine(CommandLineDefinition.AdminHeading);
        WriteRows(output, [.. definition.AdminVerbs.Select(v => (Usage(definition, v), v.Description ?? ""))]);
        output.WriteLine("  Each also takes --json (the daemon's answer as JSON). Durations: 30m, 1h, 2d, 1w.");
        output.WriteLine();
        output.WriteLine("Options:");
        WriteRows(output, [.. definition.Root.Options.Where(o => !o.Hidden).Append(definition.Json).Select(o => (Names(o), o.Description ?? ""))]);
        output.WriteLine();
        output.Write(CommandLineDefinition.Epilogue);
        output.WriteLine();
    }

    private static string Label(Option option) =>
        option.Arity.MaximumNumberOfValues == 0 || option.ValueType == typeof(bool) ? option.Name : $"{option.Name} {option.HelpName ?? "VALUE"}";

    /// <summary>"-c, --config FILE": short aliases first, as man pages and getopt's help do.</summary>
    private static string Names(Option option) =>
        string.Join(", ", [.. option.Aliases.Order(StringComparer.Ordinal), Label(option)]);

    private static void WriteRows(TextWriter output, IReadOnlyList<(string First, string Second)> rows)
    {
        var width = Math.Min(Column, rows.Where(r => r.First.Length < Column).Select(r => r.First.Length).DefaultIfEmpty(0).Max() + 2);
        foreach (var (first, second) in rows)
        {
            output.WriteLine(first.Length < width - 1
                ? $"  {first.PadRight(width)}{second}"
                : $"  {first}{Environment.NewLine}  {new string(' ', width)}{second}");
        }
    }
}
