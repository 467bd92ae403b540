using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Interceptor.Core.Options;

/// <summary>The relay pool's keys (issue 15): <c>Relay.Mode</c>, <c>Relay.ModeByUser</c>, <c>Relay.Smarthosts</c>,
/// <c>Relay.CredentialsFile</c> and <c>Burn.*</c>.</summary>
public static partial class OptionsValidator
{
    private static void CheckRelayPool(InterceptorOptions options, Action<bool, string, string> check)
    {
        var relay = options.Relay;
        var modes = relay.ModeByUser.Values.Append(relay.Mode).ToList();
        check(Enum.IsDefined(relay.Mode), "Relay.Mode", "must be OriginalDestination, Smarthost or Auto");
        foreach (var (user, mode) in relay.ModeByUser)
        {
            check(!string.IsNullOrWhiteSpace(user), "Relay.ModeByUser", "empty user name");
            check(Enum.IsDefined(mode), $"Relay.ModeByUser.{user}", "must be OriginalDestination, Smarthost or Auto");
        }

        var usesPool = modes.Any(m => m != RelayMode.OriginalDestination);
        check(!usesPool || relay.Smarthosts.Any(s => s.Role == SmarthostRole.Primary), "Relay.Smarthosts",
            "Smarthost or Auto mode needs at least one relay with Role Primary");
        check(relay.CredentialsFile.Length == 0 || Path.IsPathRooted(relay.CredentialsFile), "Relay.CredentialsFile", "must be an absolute path");
        for (var i = 0; i < relay.Smarthosts.Count; i++)
        {
            CheckSmarthost(relay.Smarthosts[i], $"Relay.Smarthosts[{i}]", hasCredentials: relay.CredentialsFile.Length > 0, check);
        }

        foreach (var name in relay.Smarthosts.GroupBy(s => s.Name, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key))
        {
            check(false, "Relay.Smarthosts", $"the name \"{name}\" is used twice");
        }

        CheckBurn(options.Burn, options.Relay.Mode == RelayMode.Auto, check);
    }

    private static void CheckSmarthost(SmarthostOptions relay, string key, bool hasCredentials, Action<bool, string, string> check)
    {
        check(RelayName().IsMatch(relay.Name), $"{key}.Name", $"\"{relay.Name}\" must be 1-32 letters, digits, '.', '_' or '-' (it names the relay in logs and commands)");
        check(HostName().IsMatch(relay.Host) || IPAddress.TryParse(relay.Host, out _), $"{key}.Host", $"\"{relay.Host}\" is not a host name or address");
        check(relay.Port is > 0 and <= 65535, $"{key}.Port", $"{relay.Port} is not a TCP port (1-65535)");
        check(Enum.IsDefined(relay.Role), $"{key}.Role", "must be Primary or Standby");
        check(Enum.IsDefined(relay.Tls), $"{key}.Tls", "must be Required, Opportunistic or None");
        check(relay.TlsName.Length == 0 || HostName().IsMatch(relay.TlsName), $"{key}.TlsName", $"\"{relay.TlsName}\" is not a host name");
        check(relay.CaFile.Length == 0 || Path.IsPathRooted(relay.CaFile), $"{key}.CaFile", "must be an absolute path");
        check(relay.HeloName.Length == 0 || HostName().IsMatch(relay.HeloName), $"{key}.HeloName", $"\"{relay.HeloName}\" is not a host name");
        check(IsPublicLookingAddress(relay.EgressAddress), $"{key}.EgressAddress",
            $"\"{relay.EgressAddress}\" must be the IPv4 or IPv6 address the relay sends from (what blocklists see)");
        if (relay.Tls == SmarthostTls.None)
        {
            check(IPAddress.TryParse(relay.Host, out var address) && IsPrivate(address), $"{key}.Tls",
                $"None sends mail in clear text: only for a relay on a private network, given by its private address (not \"{relay.Host}\")");
            check(!hasCredentials, $"{key}.Tls", "None would send the Relay.CredentialsFile logins in clear text; use Required");
        }
    }

    private static void CheckBurn(BurnOptions burn, bool auto, Action<bool, string, string> check)
    {
        for (var i = 0; i < burn.Patterns.Count; i++)
        {
            var pattern = burn.Patterns[i];
            check(!string.IsNullOrWhiteSpace(pattern.Label), $"Burn.Patterns[{i}].Label", "must be set (it names the match in logs and alerts)");
            var problem = pattern.Pattern.Length == 0 ? "must be set" : RegexProblem(pattern.Pattern);
            check(problem is null, $"Burn.Patterns[{i}].Pattern", problem ?? "");
        }

        check(burn.Threshold is > 0 and <= 100000, "Burn.Threshold", "must be 1-100000");
        check(burn.HostMinUsers is >= 1 and <= 1000, "Burn.HostMinUsers", "must be 1-1000");
        check(burn.HostMinNetworks is >= 1 and <= 1000, "Burn.HostMinNetworks", "must be 1-1000");
        check(burn.RelayMinUsers is >= 1 and <= 1000, "Burn.RelayMinUsers", "must be 1-1000");
        check(Within(burn.Window, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10080)), "Burn.WindowMinutes", "must be 1-10080");
        for (var i = 0; i < burn.DnsblZones.Count; i++)
        {
            check(HostName().IsMatch(burn.DnsblZones[i]) && burn.DnsblZones[i].Contains('.', StringComparison.Ordinal), $"Burn.DnsblZones[{i}]",
                $"\"{burn.DnsblZones[i]}\" is not a DNS zone such as zen.spamhaus.org");
        }

        check(burn.DnsServer.Length == 0 || IPAddress.TryParse(burn.DnsServer, out _) || (IPEndPoint.TryParse(burn.DnsServer, out var server) && server.Port != 0),
            "Burn.DnsServer", $"\"{burn.DnsServer}\" must be empty (the system's resolver), an address, or address:port (IPv6 as [addr]:port)");
        check(Within(burn.CheckInterval, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10080)), "Burn.CheckIntervalMinutes", "must be 1-10080");
        check(burn.HostAddress.Length == 0 || IsPublicLookingAddress(burn.HostAddress), "Burn.HostAddress",
            $"\"{burn.HostAddress}\" must be empty or the host's own public IPv4 or IPv6 address");
        check(!auto || burn.HostAddress.Length > 0 || burn.DnsblZones.Count == 0, "Burn.HostAddress",
            "Auto mode looks the host's own address up in Burn.DnsblZones: set it (or set Burn.DnsblZones to [] for reply patterns only)");
        check(Within(burn.ReturnAfter, TimeSpan.Zero, TimeSpan.FromDays(3650)), "Burn.ReturnAfterDays", "must be 0-3650");
        check(burn.ReturnCleanChecks is >= 0 and <= 1000, "Burn.ReturnCleanChecks", "must be 0-1000");
    }

    private static string? RegexProblem(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
            return null;
        }
        catch (ArgumentException e)
        {
            return $"not a valid regular expression: {e.Message}";
        }
    }

    /// <summary>An address a blocklist could list: not unspecified, loopback or multicast.</summary>
    private static bool IsPublicLookingAddress(string text) =>
        IPAddress.TryParse(text, out var address) && !IPAddress.IsLoopback(address) && !address.Equals(IPAddress.Any)
        && !address.Equals(IPAddress.IPv6Any) && !address.IsIPv6Multicast && !(address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes()[0] >= 224);

    /// <summary>RFC 1918, RFC 6598 (carrier-grade NAT), loopback, IPv6 unique-local and link-local.</summary>
    internal static bool IsPrivate(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address) || address.IsIPv6UniqueLocal || address.IsIPv6LinkLocal)
        {
            return true;
        }

        var b = address.GetAddressBytes();
        return address.AddressFamily == AddressFamily.InterNetwork
            && (b[0] == 10 || (b[0] == 172 && (b[1] & 0xF0) == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xC0) == 64));
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    private static partial Regex RelayName();
}
