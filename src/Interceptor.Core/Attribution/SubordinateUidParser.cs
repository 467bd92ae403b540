using System.Globalization;

namespace Interceptor.Core.Attribution;

/// <summary>One valid line of /etc/subuid: <c>owner:start:count</c>, the owner a login name or a numeric uid.</summary>
public sealed record SubordinateUidLine(int LineNumber, string Owner, UidRange Range);

/// <summary>What a parse of /etc/subuid found: the valid lines, and one sentence per line it skipped.</summary>
public sealed record ParsedSubordinateUids(IReadOnlyList<SubordinateUidLine> Lines, IReadOnlyList<string> Problems);

/// <summary>
/// Parses the text of /etc/subuid (subuid(5)). The file is written by useradd/usermod, but also by hand and by
/// panels, so a malformed line is skipped with its line number rather than failing the whole file: the other
/// users' ranges must still be attributed.
/// </summary>
public static class SubordinateUidParser
{
    // A hostile or corrupt file must not make the daemon allocate without bound; shadow itself has no limit,
    // but a host with more users than this has other problems.
    public const int MaxLines = 1_000_000;

    public static ParsedSubordinateUids Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = new List<SubordinateUidLine>();
        var problems = new List<string>();
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            if (number > MaxLines)
            {
                problems.Add($"line {number}: more than {MaxLines} lines; the rest is ignored");
                break;
            }

            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            if (ParseLine(number, line, out var problem) is { } parsed)
            {
                lines.Add(parsed);
            }
            else
            {
                problems.Add(problem!);
            }
        }

        return new ParsedSubordinateUids(lines.AsReadOnly(), problems.AsReadOnly());
    }

    private static SubordinateUidLine? ParseLine(int number, string line, out string? problem)
    {
        problem = null;
        var fields = line.Split(':');
        if (fields.Length != 3)
        {
            problem = $"line {number}: expected owner:start:count, found {fields.Length} field(s): \"{Shorten(line)}\"";
            return null;
        }

        var owner = fields[0];
        if (owner.Length == 0 || owner.Length > 256 || owner.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            problem = $"line {number}: \"{Shorten(owner)}\" is not a user name or uid";
            return null;
        }

        if (!uint.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var start))
        {
            problem = $"line {number}: start \"{Shorten(fields[1])}\" is not a uid";
            return null;
        }

        if (!uint.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count == 0)
        {
            problem = $"line {number}: count \"{Shorten(fields[2])}\" is not a positive number";
            return null;
        }

        var last = (ulong)start + count - 1;
        if (last > UidRange.MaxUid)
        {
            problem = $"line {number}: range {start}+{count} goes beyond the highest uid {UidRange.MaxUid}";
            return null;
        }

        return new SubordinateUidLine(number, owner, new UidRange(start, (uint)last));
    }

    // Problems are logged: keep them short and printable whatever the file holds.
    private static string Shorten(string text) =>
        new([.. text.Take(60).Select(c => char.IsControl(c) ? '?' : c)]);
}
