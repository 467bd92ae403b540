using Interceptor.Core.Options;
using Microsoft.Extensions.Configuration;

namespace Interceptor.Daemon.Configuration;

/// <summary>The relay pool's keys (issue 15): <c>Relay.ModeByUser</c>, <c>Relay.Smarthosts</c>, <c>Relay.CredentialsFile</c>, <c>Burn.*</c>.</summary>
public static partial class ConfigurationLoader
{
    private static readonly string[] SmarthostKeys = ["Name", "Host", "Port", "Role", "Tls", "TlsName", "CaFile", "EgressAddress", "HeloName"];

    private static readonly string[] BurnScalarKeys =
    [
        "Threshold", "WindowMinutes", "DnsServer", "CheckIntervalMinutes", "HostAddress", "ReturnAfterDays", "ReturnCleanChecks",
    ];

    private static readonly string[] BurnPatternKeys = ["Label", "Pattern"];

    private static bool IsRelayPoolKey(string[] parts)
    {
        static bool Is(string part, string name) => part.Equals(name, StringComparison.OrdinalIgnoreCase);
        static bool IsIndex(string part) => int.TryParse(part, out _);
        static bool IsOneOf(string part, string[] names) => names.Contains(part, StringComparer.OrdinalIgnoreCase);

        if (Is(parts[0], "Relay") && parts.Length >= 2)
        {
            // A list given as [] is one leaf with an empty value.
            return (parts.Length == 2 && (Is(parts[1], "CredentialsFile") || Is(parts[1], "Smarthosts")))
                || (parts.Length == 3 && Is(parts[1], "ModeByUser"))
                || (parts.Length == 4 && Is(parts[1], "Smarthosts") && IsIndex(parts[2]) && IsOneOf(parts[3], SmarthostKeys));
        }

        return Is(parts[0], "Burn") && parts.Length >= 2
            && ((parts.Length == 2 && (IsOneOf(parts[1], BurnScalarKeys) || Is(parts[1], "DnsblZones") || Is(parts[1], "Patterns")))
                || (parts.Length == 3 && Is(parts[1], "DnsblZones") && IsIndex(parts[2]))
                || (parts.Length == 4 && Is(parts[1], "Patterns") && IsIndex(parts[2]) && IsOneOf(parts[3], BurnPatternKeys)));
    }

    private static Dictionary<string, RelayMode> ModeByUser(IConfiguration c, List<string> errors) =>
        c.GetSection("Relay:ModeByUser").GetChildren().ToDictionary(
            u => u.Key,
            u => Enum(c, $"Relay:ModeByUser:{u.Key}", RelayMode.OriginalDestination, errors),
            StringComparer.Ordinal);

    private static List<SmarthostOptions> Smarthosts(IConfiguration c, List<string> errors)
    {
        var defaults = new SmarthostOptions();
        return Indexed(c.GetSection("Relay:Smarthosts")).Select(s =>
        {
            var key = $"Relay:Smarthosts:{s.Key}";
            return new SmarthostOptions
            {
                Name = s["Name"] ?? defaults.Name,
                Host = s["Host"] ?? defaults.Host,
                Port = Int(c, $"{key}:Port", defaults.Port, errors),
                Role = Enum(c, $"{key}:Role", defaults.Role, errors),
                Tls = Enum(c, $"{key}:Tls", defaults.Tls, errors),
                TlsName = s["TlsName"] ?? defaults.TlsName,
                CaFile = s["CaFile"] ?? defaults.CaFile,
                EgressAddress = s["EgressAddress"] ?? defaults.EgressAddress,
                HeloName = s["HeloName"] ?? defaults.HeloName,
            };
        }).ToList();
    }

    private static BurnOptions Burn(IConfiguration c, List<string> errors)
    {
        var defaults = new BurnOptions();
        var patterns = c.GetSection("Burn:Patterns");
        return new BurnOptions
        {
            // A configured list replaces the defaults; "Patterns": [] turns reply matching off.
            Patterns = patterns.GetChildren().Any()
                ? Indexed(patterns).Select(p => new BurnPatternOptions { Label = p["Label"] ?? "", Pattern = p["Pattern"] ?? "" }).ToList()
                : patterns.Value == "" ? [] : defaults.Patterns,
            Threshold = Int(c, "Burn:Threshold", defaults.Threshold, errors),
            WindowMinutes = Int(c, "Burn:WindowMinutes", defaults.WindowMinutes, errors),
            DnsblZones = List(c, "Burn:DnsblZones", defaults.DnsblZones, errors, s => s),
            DnsServer = c["Burn:DnsServer"] ?? defaults.DnsServer,
            CheckIntervalMinutes = Int(c, "Burn:CheckIntervalMinutes", defaults.CheckIntervalMinutes, errors),
            HostAddress = c["Burn:HostAddress"] ?? defaults.HostAddress,
            ReturnAfterDays = Int(c, "Burn:ReturnAfterDays", defaults.ReturnAfterDays, errors),
            ReturnCleanChecks = Int(c, "Burn:ReturnCleanChecks", defaults.ReturnCleanChecks, errors),
        };
    }

    /// <summary>
    /// Until the relay path acts on the pool, Smarthost or Auto would be accepted and then silently ignored (mail sent
    /// direct from the host's address, what the pool exists to avoid): the daemon refuses them. Remove when wired.
    /// </summary>
    private static IEnumerable<string> PoolModesNotYetWired(InterceptorOptions options) =>
        options.Relay.ModeByUser.Values.Append(options.Relay.Mode).All(m => m == RelayMode.OriginalDestination)
            ? []
            : ["Relay.Mode: Smarthost and Auto are not available in this build yet (the relay pool is not wired into the relay path); use OriginalDestination"];

    private static IEnumerable<IConfigurationSection> Indexed(IConfigurationSection section) =>
        section.GetChildren().OrderBy(i => int.TryParse(i.Key, out var index) ? index : int.MaxValue);
}
