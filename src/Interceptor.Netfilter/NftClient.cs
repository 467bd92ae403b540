using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using Interceptor.Linux;

namespace Interceptor.Netfilter;

/// <summary>
/// Runs the <c>nft</c> program. Every call checks the exit code and stderr, is bounded by
/// <see cref="Timeout"/>, and never goes through a shell: arguments are passed as a list and
/// scripts on stdin (<c>nft -f -</c>), so nothing in a table name or script is interpreted twice.
/// </summary>
/// <param name="networkNamespace">
/// When set, every command runs as <c>ip netns exec NAME nft …</c>, so tests can work on a throwaway
/// namespace and never on the host's own ruleset.
/// </param>
/// <param name="nftPath">The nft program: a bare name is looked up in PATH, then /usr/sbin and /sbin.</param>
public sealed class NftClient(string? networkNamespace = null, string nftPath = "nft")
{
    // Debian keeps nft and ip in /usr/sbin, which is not in PATH for non-root shells or some service managers.
    private static readonly string[] FallbackDirectories = ["/usr/sbin", "/sbin"];

    /// <summary>The network namespace every command runs in, or null for the host's own.</summary>
    public string? NetworkNamespace { get; } = networkNamespace;

    /// <summary>
    /// The longest one nft invocation may take before it is killed. Killing is safe: the kernel
    /// applies an nft transaction all or nothing.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Applies a script (normally from <see cref="RulesetRenderer.Render"/>) as one transaction.</summary>
    public async Task ApplyAsync(string script, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(script);
        var result = await RunAsync(["-f", "-"], script, cancellationToken);
        result.ThrowUnlessSucceeded();
    }

    /// <summary>
    /// Has the kernel check a script as one transaction and throw it away (<c>nft -c</c>): every rule is validated, modules
    /// loaded, nothing changes.
    /// </summary>
    /// <exception cref="NftCommandException">The kernel or nft refused the script.</exception>
    public async Task CheckAsync(string script, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(script);
        var result = await RunAsync(["-c", "-f", "-"], script, cancellationToken);
        result.ThrowUnlessSucceeded();
    }

    /// <summary>
    /// <c>nft -j list table inet NAME</c>, or null when the table does not exist.
    /// Any other failure (no permission, no such namespace, unreadable output) throws.
    /// </summary>
    public async Task<JsonDocument?> ListTableAsync(string table, CancellationToken cancellationToken)
    {
        NftNames.CheckTable(table);
        return await ListJsonAsync(["-j", "list", "table", "inet", table], cancellationToken);
    }

    /// <summary>
    /// <c>nft -j list set inet TABLE SET</c>: the set with its elements, without the rest of the table;
    /// null when the table or the set does not exist (nft reports both the same way).
    /// </summary>
    public async Task<JsonDocument?> ListSetAsync(string table, string set, CancellationToken cancellationToken)
    {
        NftNames.CheckTable(table);
        NftNames.CheckSetName(set);
        return await ListJsonAsync(["-j", "list", "set", "inet", table, set], cancellationToken);
    }

    /// <summary>
    /// Deletes our table; not an error when it is already gone. Done with the same create-then-delete
    /// idiom as the install script, as one transaction, instead of recognising nft's error text for
    /// "absent": nft 1.0.6 has no <c>destroy table</c>.
    /// </summary>
    public Task DeleteTableAsync(string table, CancellationToken cancellationToken) => DeleteTablesAsync([table], cancellationToken);

    /// <summary>Deletes several tables in one transaction, each like <see cref="DeleteTableAsync"/>.</summary>
    public async Task DeleteTablesAsync(IReadOnlyList<string> tables, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tables);
        var script = string.Concat(tables.Select(t => $"table inet {NftNames.CheckTable(t)} {{}}\ndelete table inet {t}\n"));
        var result = await RunAsync(["-f", "-"], script, cancellationToken);
        result.ThrowUnlessSucceeded();
    }

    /// <summary>
    /// nft reports a missing table as ENOENT: "Error: No such file or directory" at the start of a line.
    /// <c>ip netns exec</c> reports a missing namespace with the same strerror text but a different prefix,
    /// which must stay an error.
    /// </summary>
    internal static bool IsNoSuchTable(string standardError) =>
        standardError.Split('\n').Any(line => line.StartsWith("Error: No such file or directory", StringComparison.Ordinal));

    private async Task<JsonDocument?> ListJsonAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var result = await RunAsync(arguments, null, cancellationToken);
        if (result.ExitCode != 0 && IsNoSuchTable(result.StandardError))
        {
            return null;
        }

        result.ThrowUnlessSucceeded();
        try
        {
            return JsonDocument.Parse(result.StandardOutput);
        }
        catch (JsonException ex)
        {
            throw new NftCommandException(result.Command, result.ExitCode, result.StandardError, $"its output is not valid JSON: {ex.Message}");
        }
    }

    private async Task<NftResult> RunAsync(IReadOnlyList<string> nftArguments, string? standardInput, CancellationToken cancellationToken)
    {
        var nft = ResolveProgram(nftPath, "nft", "nftables");

        // ip setns()es and then execs nft in the same process, so killing it on timeout kills nft.
        var request = NetworkNamespace is null
            ? new ProcessRequest(nft, nftArguments)
            : new ProcessRequest(ResolveProgram("ip", "ip", "iproute2"), ["netns", "exec", NetworkNamespace, nft, .. nftArguments]);
        request = request with
        {
            StandardInput = standardInput,
            Timeout = Timeout,

            // strerror() texts such as "No such file or directory" are localised; we match on them.
            Environment = new Dictionary<string, string> { ["LC_ALL"] = "C" },
        };
        try
        {
            var result = await ProcessRunner.RunAsync(request, cancellationToken);
            return new NftResult(request.CommandLine, result.ExitCode, result.StandardOutput, result.StandardError);
        }
        catch (Win32Exception ex) when (ex.NativeErrorCode == 2)
        {
            throw new NftNotInstalledException(request.Program, NetworkNamespace is null ? "nftables" : "iproute2", ex);
        }
        catch (Win32Exception ex)
        {
            throw new NftCommandException(request.CommandLine, -1, string.Empty, $"it could not be started: {ex.Message}");
        }
        catch (ProcessTimedOutException ex)
        {
            var seconds = Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            throw new NftCommandException(request.CommandLine, -1, ex.StandardError, $"no answer within {seconds} s, killed");
        }
    }

    /// <summary>
    /// Finds the program ourselves, so a missing one gives a clear message naming the Debian package
    /// instead of a bare "No such file or directory" from exec.
    /// </summary>
    private static string ResolveProgram(string program, string displayName, string debianPackage)
    {
        if (program.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(program) ? program : throw new NftNotInstalledException(program, debianPackage);
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var directory in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(FallbackDirectories))
        {
            var candidate = Path.Combine(directory, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new NftNotInstalledException(displayName, debianPackage);
    }

    private sealed record NftResult(string Command, int ExitCode, string StandardOutput, string StandardError)
    {
        /// <summary>
        /// Success is exit code 0 and an empty stderr. nft 1.0.6 writes nothing to stderr when all went well,
        /// so anything there is something an admin should see rather than something we silently drop.
        /// </summary>
        public void ThrowUnlessSucceeded()
        {
            if (ExitCode != 0)
            {
                throw new NftCommandException(Command, ExitCode, StandardError);
            }

            if (!string.IsNullOrWhiteSpace(StandardError))
            {
                throw new NftCommandException(Command, ExitCode, StandardError, "it exited 0 but reported a problem");
            }
        }
    }
}
