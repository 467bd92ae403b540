namespace Interceptor.Netfilter;

/// <summary>
/// Base of every failure to install, read or remove our nftables table, so the daemon can
/// catch "the firewall part failed" in one place and stay fail-closed.
/// </summary>
public class NetfilterException : Exception
{
    public NetfilterException()
    {
    }

    public NetfilterException(string message)
        : base(message)
    {
    }

    public NetfilterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The <c>nft</c> program (or <c>ip</c>, when running inside a network namespace) is not on this host.</summary>
public sealed class NftNotInstalledException : NetfilterException
{
    public NftNotInstalledException()
        : this("nft", "nftables")
    {
    }

    public NftNotInstalledException(string message)
        : base(message)
    {
        Program = "nft";
    }

    public NftNotInstalledException(string message, Exception innerException)
        : base(message, innerException)
    {
        Program = "nft";
    }

    public NftNotInstalledException(string program, string debianPackage, Exception? innerException = null)
        : base(
            (program.Contains('/', StringComparison.Ordinal)
                ? $"The program {program} does not exist. "
                : $"The '{program}' program was not found (looked in PATH, /usr/sbin and /sbin). ")
            + $"smtp-interceptor needs it to manage its firewall table: install it with `apt-get install {debianPackage}`.",
            innerException ?? new FileNotFoundException(program))
    {
        Program = program;
    }

    /// <summary>The program that is missing, as configured (for example <c>nft</c> or a full path).</summary>
    public string Program { get; }
}

/// <summary>
/// One invocation of <c>nft</c> failed: non-zero exit, output on stderr, unreadable output, or a timeout.
/// The message quotes the command and nft's own words, plus a hint for the common causes.
/// </summary>
public sealed class NftCommandException : NetfilterException
{
    public NftCommandException()
    {
        Command = string.Empty;
        StandardError = string.Empty;
    }

    public NftCommandException(string message)
        : base(message)
    {
        Command = string.Empty;
        StandardError = string.Empty;
    }

    public NftCommandException(string message, Exception innerException)
        : base(message, innerException)
    {
        Command = string.Empty;
        StandardError = string.Empty;
    }

    public NftCommandException(string command, int exitCode, string standardError, string? detail = null)
        : base(Describe(command, exitCode, standardError, detail))
    {
        Command = command;
        ExitCode = exitCode;
        StandardError = standardError;
    }

    /// <summary>The command line as an admin would type it.</summary>
    public string Command { get; }

    /// <summary>The exit code, or -1 when the process was killed or never ran.</summary>
    public int ExitCode { get; }

    public string StandardError { get; }

    private static string Describe(string command, int exitCode, string standardError, string? detail)
    {
        var text = $"`{command}` failed";
        text += exitCode >= 0 ? $" with exit code {exitCode}" : string.Empty;
        text += detail is null ? string.Empty : $" ({detail})";
        var stderr = standardError.Trim();
        text += stderr.Length == 0 ? "." : $": {stderr}";
        var hint = Hint(stderr);
        return hint is null ? text : $"{text}{Environment.NewLine}Hint: {hint}";
    }

    // The causes an admin actually meets, translated into what to do about them.
    private static string? Hint(string stderr)
    {
        if (stderr.Contains("Operation not permitted", StringComparison.Ordinal))
        {
            return "managing nftables needs root or CAP_NET_ADMIN; run the daemon as root or grant the capability in the systemd unit.";
        }

        // Element updates (suspend, unsuspend) need the installed table and its set.
        if (stderr.Contains("No such file or directory", StringComparison.Ordinal) && stderr.Contains(" element ", StringComparison.Ordinal))
        {
            return "the table or its set does not exist: smtp-interceptor installs the table when it starts (check Interception.Table and `nft list tables`).";
        }

        if (stderr.Contains("Could not process rule", StringComparison.Ordinal)
            && !stderr.Contains("delete table", StringComparison.Ordinal))
        {
            return "the kernel refused the ruleset; check that the nf_tables, nft_chain_nat, nft_redir, nft_ct and nft_reject_inet modules are available (`modprobe nft_chain_nat nft_redir nft_ct nft_reject_inet`).";
        }

        if (stderr.Contains("Cannot open network namespace", StringComparison.Ordinal))
        {
            return "the network namespace does not exist (`ip netns list`).";
        }

        return null;
    }
}

/// <summary>
/// nft accepted the ruleset, but reading it back shows something else than we asked for
/// (another program changed it, or this nft/kernel interprets it differently).
/// </summary>
public sealed class RulesetVerificationException : NetfilterException
{
    public RulesetVerificationException()
    {
        Table = string.Empty;
        Differences = [];
    }

    public RulesetVerificationException(string message)
        : base(message)
    {
        Table = string.Empty;
        Differences = [];
    }

    public RulesetVerificationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Table = string.Empty;
        Differences = [];
    }

    public RulesetVerificationException(string table, IReadOnlyList<string> differences)
        : base(
            $"The nftables table inet {table} does not match the configuration after installing it "
            + $"(inspect it with `nft list table inet {table}`):{Environment.NewLine}- "
            + string.Join($"{Environment.NewLine}- ", differences))
    {
        Table = table;
        Differences = differences;
    }

    public string Table { get; }

    /// <summary>One sentence per difference, as returned by <see cref="RulesetVerifier.FindDifferences"/>.</summary>
    public IReadOnlyList<string> Differences { get; }
}
