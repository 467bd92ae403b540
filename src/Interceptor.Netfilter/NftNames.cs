using System.Text.RegularExpressions;

namespace Interceptor.Netfilter;

/// <summary>
/// What names we paste into nft scripts and command lines: a newline or a brace in a table or set name would let the
/// configuration inject commands into a ruleset applied as root. nft accepts more (dots, slashes), but a strict
/// identifier keeps the script and the shell commands in the admin guide safe to paste. 64 is far below nft's own limit
/// of 256; the guard table's name adds <see cref="RulesetSpec.GuardSuffix"/> to the configured name, which is therefore
/// held to 58.
/// </summary>
public static partial class NftNames
{
    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,57}$", RegexOptions.CultureInvariant)]
    private static partial Regex ConfiguredTablePattern();

    /// <summary>Why <paramref name="table"/> cannot be <c>Interception.Table</c> (as check-config says it), or null.</summary>
    public static string? ConfiguredTableProblem(string table) =>
        ConfiguredTablePattern().IsMatch(table)
            ? null
            : $"\"{table}\" is not a valid nft table name (letters, digits, _; at most 58, starting with a letter: the guard table adds \"{RulesetSpec.GuardSuffix}\")";

    /// <summary>A table name for an nft command line: ours or our guard's.</summary>
    internal static string CheckTable(string table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return NamePattern().IsMatch(table)
            ? table
            : throw new ArgumentException($"\"{table}\" is not a valid table name: use a letter followed by letters, digits or '_' (at most 64).", nameof(table));
    }

    /// <summary>The configured table name, which leaves room for <see cref="RulesetSpec.GuardSuffix"/>.</summary>
    internal static string CheckConfiguredTable(string table)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (!ConfiguredTablePattern().IsMatch(table))
        {
            throw new ArgumentException(
                $"Interception.Table \"{table}\" is not a valid table name: use a letter followed by letters, digits or '_' (at most 58, to leave room for \"{RulesetSpec.GuardSuffix}\").",
                nameof(table));
        }

        return table;
    }

    /// <summary>Set names go into nft command lines like the table name, so they obey the same rule.</summary>
    internal static string CheckSetName(string set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return NamePattern().IsMatch(set)
            ? set
            : throw new ArgumentException($"\"{set}\" is not a valid set name: use a letter followed by letters, digits or '_' (at most 64).", nameof(set));
    }
}
