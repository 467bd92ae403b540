using System.Globalization;

namespace Interceptor.Linux;

/// <summary>The capabilities this process holds in its effective set (<c>CapEff:</c> in /proc/self/status).</summary>
public static class ProcessCapabilities
{
    /// <summary>CAP_NET_ADMIN: what the daemon and its boot unit need for nft, and an admin's shell does not hold.</summary>
    public const int NetAdmin = 12;

    /// <summary>Whether <paramref name="capability"/> is effective; false when the status cannot be read.</summary>
    public static bool HasEffective(int capability) => HasEffective(capability, ReadStatus());

    /// <summary><see cref="HasEffective(int)"/> from a status file's text (tests).</summary>
    public static bool HasEffective(int capability, string? status)
    {
        var line = status?.Split('\n').FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is not null
            && ulong.TryParse(line["CapEff:".Length..].Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var effective)
            && (effective & (1UL << capability)) != 0;
    }

    private static string? ReadStatus()
    {
        try
        {
            return File.ReadAllText("/proc/self/status");
        }
        catch (IOException)
        {
            return null;
        }
    }
}
