using System.Collections.ObjectModel;
using System.Text;
using System.Text.RegularExpressions;
using Interceptor.Core.Options;

namespace Interceptor.Netfilter;

/// <summary>
/// Everything that decides the content of our nftables table, already resolved to numbers.
/// Ports and UIDs are kept sorted and distinct whichever way the record is built (constructor or
/// <c>with</c>), so the rendered script is deterministic and two equal specs compare equal.
/// </summary>
public sealed partial record RulesetSpec(string Table, int ListenPort, IReadOnlyList<int> Ports, IReadOnlyList<uint> ExemptUids)
{
    /// <summary>The one chain we own; the verifier and the admin guide refer to it by this name.</summary>
    public const string ChainName = "output_nat";

    /// <summary>The named set of UIDs whose connections are left alone.</summary>
    public const string ExemptSetName = "exempt_uids";

    /// <summary>
    /// The table name is pasted into an nft script, so it must be a plain identifier: a newline or a brace
    /// would let the configuration inject commands into a ruleset applied as root.
    /// </summary>
    public string Table { get; init => field = CheckTable(value); } = CheckTable(Table);

    public int ListenPort { get; init => field = CheckPort(value, nameof(ListenPort)); } = CheckPort(ListenPort, nameof(ListenPort));

    public IReadOnlyList<int> Ports { get; init => field = NormalizePorts(value); } = NormalizePorts(Ports);

    public IReadOnlyList<uint> ExemptUids { get; init => field = NormalizeUids(value); } = NormalizeUids(ExemptUids);

    /// <summary>
    /// The spec for a configuration. <paramref name="exemptUids"/> are the already resolved
    /// <c>Interception.ExemptUsers</c> plus the daemon's own UID (the caller adds it: without it the
    /// daemon's own upstream connections would be redirected back to itself).
    /// </summary>
    public static RulesetSpec FromOptions(InterceptorOptions options, IEnumerable<uint> exemptUids)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(exemptUids);
        var spec = new RulesetSpec(options.Interception.Table, options.Listen.Port, [.. options.Interception.Ports], [.. exemptUids]);
        spec.EnsureConsistent();
        return spec;
    }

    /// <summary>
    /// Checks what a single property cannot: the listener port must not itself be intercepted,
    /// or connections to the listener would be redirected onto themselves.
    /// </summary>
    public void EnsureConsistent()
    {
        if (Ports.Contains(ListenPort))
        {
            throw new ArgumentException(
                $"Listen.Port {ListenPort} is also in Interception.Ports; the listener port must not be intercepted.",
                nameof(ListenPort));
        }
    }

    public bool Equals(RulesetSpec? other) =>
        other is not null
        && string.Equals(Table, other.Table, StringComparison.Ordinal)
        && ListenPort == other.ListenPort
        && Ports.SequenceEqual(other.Ports)
        && ExemptUids.SequenceEqual(other.ExemptUids);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Table, StringComparer.Ordinal);
        hash.Add(ListenPort);
        foreach (var port in Ports)
        {
            hash.Add(port);
        }

        foreach (var uid in ExemptUids)
        {
            hash.Add(uid);
        }

        return hash.ToHashCode();
    }

    // Lists print as their contents, so a logged spec says what will be installed.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Table = ").Append(Table)
            .Append(", ListenPort = ").Append(ListenPort)
            .Append(", Ports = [").AppendJoin(", ", Ports)
            .Append("], ExemptUids = [").AppendJoin(", ", ExemptUids).Append(']');
        return true;
    }

    // nft accepts more (dots, slashes), but a strict identifier keeps the script and the shell commands
    // in the admin guide safe to paste. 64 is far below nft's own limit of 256.
    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex TableNamePattern();

    internal static string CheckTable(string table)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (!TableNamePattern().IsMatch(table))
        {
            throw new ArgumentException(
                $"Interception.Table \"{table}\" is not a valid table name: use a letter followed by letters, digits or '_' (at most 64).",
                nameof(table));
        }

        return table;
    }

    private static int CheckPort(int port, string name)
    {
        if (port is < 1 or > 65535)
        {
            throw new ArgumentOutOfRangeException(name, port, $"{name} must be a TCP port between 1 and 65535.");
        }

        return port;
    }

    private static ReadOnlyCollection<int> NormalizePorts(IReadOnlyList<int> ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        if (ports.Count == 0)
        {
            throw new ArgumentException("Interception.Ports must name at least one port; an empty list would intercept nothing.", nameof(ports));
        }

        foreach (var port in ports)
        {
            CheckPort(port, "Interception.Ports");
        }

        return Array.AsReadOnly([.. ports.Distinct().Order()]);
    }

    private static ReadOnlyCollection<uint> NormalizeUids(IReadOnlyList<uint> uids)
    {
        ArgumentNullException.ThrowIfNull(uids);
        return Array.AsReadOnly([.. uids.Distinct().Order()]);
    }
}
