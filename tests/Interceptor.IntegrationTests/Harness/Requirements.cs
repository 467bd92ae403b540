namespace Interceptor.IntegrationTests;

/// <summary>
/// What these tests need from the machine. On a developer box without root or the tools the
/// tests are skipped with the reason; under CI (CI=true) a skip would hide a broken pipeline,
/// so the same reason fails the run instead.
/// </summary>
public static class Requirements
{
    public const string Python = "/usr/bin/python3";

    /// <summary>Tool name → the Debian package that provides it, for the message.</summary>
    private static readonly (string Tool, string Package)[] Tools =
    [
        ("nft", "nftables"),
        ("ip", "iproute2"),
        ("ss", "iproute2"),
        ("kill", "procps"),
        ("setpriv", "util-linux"),
        ("useradd", "passwd"),
        ("swaks", "swaks"),
        ("smtp-sink", "postfix"),
    ];

    public static bool UnderCi =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Ignores (or, under CI, fails) the current test or fixture when something is missing.</summary>
    public static void Ensure()
    {
        var reason = Missing();
        if (reason is null)
        {
            return;
        }

        if (UnderCi)
        {
            Assert.Fail($"integration tests cannot run under CI: {reason}");
        }

        Assert.Ignore(reason);
    }

    /// <summary>Null when everything is there, else a sentence naming what is missing.</summary>
    public static string? Missing()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "integration tests need Linux (network namespaces, nftables)";
        }

        if (!string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
        {
            return $"integration tests need root (network namespaces, nft, setpriv); running as {Environment.UserName}";
        }

        var missing = Tools.Where(t => Which(t.Tool) is null).Select(t => $"{t.Tool} (package {t.Package})").ToList();
        if (!File.Exists(Python))
        {
            missing.Add($"{Python} (package python3)");
        }

        return missing.Count == 0 ? null : "missing tools: " + string.Join(", ", missing);
    }

    /// <summary>Full path of a tool on the sbin-inclusive PATH, or null.</summary>
    public static string? Which(string tool) =>
        ProcessRunner.SafePath.Split(':')
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);

    public static string Require(string tool) =>
        Which(tool) ?? throw new InvalidOperationException($"{tool} not found on {ProcessRunner.SafePath}");
}
