namespace Interceptor.Smtp.Protocol;

/// <summary>A command as the client typed it: the verb (upper-cased) and the rest of the line.</summary>
public readonly record struct CommandLine(string Verb, string Argument)
{
    public static CommandLine Parse(string line)
    {
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        return space < 0
            ? new CommandLine(line.ToUpperInvariant(), "")
            : new CommandLine(line[..space].ToUpperInvariant(), line[(space + 1)..].Trim());
    }
}
