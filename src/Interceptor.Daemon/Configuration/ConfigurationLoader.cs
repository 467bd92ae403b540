using System.Globalization;
using Interceptor.Core.Options;
using Microsoft.Extensions.Configuration;

namespace Interceptor.Daemon.Configuration;

/// <summary>A configuration that could not be loaded; every message names the key at fault.</summary>
public sealed class ConfigurationException(IReadOnlyList<string> errors)
    : Exception("invalid configuration:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(e => "  " + e)))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}

/// <summary>
/// Reads the JSON file (comments allowed) and SMTPI_ environment variables into <see cref="InterceptorOptions"/>.
/// Mapped by hand rather than with the binder: the binder appends configured list items to the defaults,
/// ignores unknown keys, and its errors do not name the key an admin typed.
/// </summary>
public static class ConfigurationLoader
{
    public const string EnvironmentPrefix = "SMTPI_";

    private static readonly string[] QuotaKeys =
    [
        "MessagesPerHour", "MessagesPerDay", "RecipientsPerHour", "RecipientsPerDay", "RecipientsPerMessage", "Connections", "MessageSizeBytes",
    ];

    private static readonly string[] ScalarKeys =
    [
        "Listen:Port", "Listen:MaxConnections", "Interception:Table", "Interception:VerifyIntervalSeconds", "Interception:RefusalSummarySeconds", "Relay:Mode", "Relay:HeloName", "Relay:ConnectTimeoutSeconds",
        "Relay:ReplyTimeoutSeconds", "Relay:DataReplyTimeoutSeconds", "Relay:ReuseConnections", "Relay:ReuseIdleSeconds",
        "Relay:ReuseMaxSeconds", "Relay:ReuseMaxMessages", "Relay:ReuseMaxIdlePerDestination", "Smtp:IdleTimeoutSeconds",
        "Smtp:SessionTimeoutSeconds", "Smtp:MaxCommandLineBytes", "Smtp:MaxDataLineBytes", "Smtp:CommandLineTimeoutSeconds",
        "Smtp:MinDataBytesPerSecond", "Smtp:SoftErrorLimit", "Smtp:HardErrorLimit", "Smtp:ErrorDelayMilliseconds", "State:Directory", "State:RetentionDays", "State:MaxBytes", "State:MinFreeBytes", "Suspension:UnsentLimit",
        "Control:SocketPath", "Control:AdminGroup", "Suspension:RefusalLimit", "Suspension:RefusalWindowMinutes",
        "Suspension:FailureRatioPercent", "Suspension:FailureMinimum", "Suspension:FailureWindowMinutes", "Alerts:Command",
        "Alerts:TimeoutSeconds", "Metrics:Listen", "Metrics:PerUser", "Trace:IncludeProcess",
        "Attribution:UnknownUids",
    ];

    private static readonly string[] ListKeys = ["Interception:Ports", "Interception:ExemptUsers", "Interception:BlockedPorts", "Relay:PermittedLocalDestinations"];

    public static InterceptorOptions Load(string? path, IDictionary<string, string?>? environment = null)
    {
        var builder = new ConfigurationBuilder();
        if (path is not null)
        {
            if (!File.Exists(path))
            {
                throw new ConfigurationException([$"{path}: no such configuration file"]);
            }

            builder.AddJsonFile(Path.GetFullPath(path), optional: false, reloadOnChange: false);
        }

        if (environment is null)
        {
            builder.AddEnvironmentVariables(EnvironmentPrefix);
        }
        else
        {
            builder.AddInMemoryCollection(environment
                .Where(e => e.Key.StartsWith(EnvironmentPrefix, StringComparison.Ordinal))
                .Select(e => KeyValuePair.Create(e.Key[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal), e.Value)));
        }

        IConfigurationRoot root;
        try
        {
            root = builder.Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            throw new ConfigurationException([$"{path}: not valid JSON: {e.InnerException?.Message ?? e.Message}"]);
        }

        var errors = new List<string>();
        CheckKnownKeys(root, errors);
        var options = Map(root, errors);
        errors.AddRange(OptionsValidator.Validate(options));
        if (errors.Count > 0)
        {
            throw new ConfigurationException(errors);
        }

        return options;
    }

    private static void CheckKnownKeys(IConfiguration root, List<string> errors)
    {
        foreach (var (key, value) in root.AsEnumerable())
        {
            if (value is null)
            {
                continue; // a section, not a leaf
            }

            if (!IsKnown(key.Split(':')))
            {
                errors.Add($"{Dotted(key)}: unknown key (see the README for the configuration keys)");
            }
        }
    }

    private static bool IsKnown(string[] parts)
    {
        var joined = string.Join(':', parts);
        if (ScalarKeys.Contains(joined, StringComparer.OrdinalIgnoreCase))
        {
            return true;
        }

        if (parts.Length == 3 && ListKeys.Contains($"{parts[0]}:{parts[1]}", StringComparer.OrdinalIgnoreCase) && int.TryParse(parts[2], out _))
        {
            return true;
        }

        if (parts.Length == 4 && parts[0].Equals("Routes", StringComparison.OrdinalIgnoreCase) && parts[1].Equals("Users", StringComparison.OrdinalIgnoreCase) && int.TryParse(parts[3], out _))
        {
            return true;
        }

        return parts.Length >= 3 && parts[0].Equals("Limits", StringComparison.OrdinalIgnoreCase) &&
            ((parts.Length == 3 && parts[1].Equals("Default", StringComparison.OrdinalIgnoreCase) && QuotaKeys.Contains(parts[2], StringComparer.OrdinalIgnoreCase)) ||
             (parts.Length == 4 && parts[1].Equals("Users", StringComparison.OrdinalIgnoreCase) && QuotaKeys.Contains(parts[3], StringComparer.OrdinalIgnoreCase)));
    }

    private static InterceptorOptions Map(IConfiguration c, List<string> errors)
    {
        var defaults = new InterceptorOptions();
        var relayDefaults = defaults.Relay;
        return new InterceptorOptions
        {
            Listen = new ListenOptions
            {
                Port = Int(c, "Listen:Port", defaults.Listen.Port, errors),
                MaxConnections = Int(c, "Listen:MaxConnections", defaults.Listen.MaxConnections, errors),
            },
            Interception = new InterceptionOptions
            {
                Ports = List(c, "Interception:Ports", defaults.Interception.Ports, errors, ParseInt),
                ExemptUsers = List(c, "Interception:ExemptUsers", defaults.Interception.ExemptUsers, errors, s => s),
                Table = c["Interception:Table"] ?? defaults.Interception.Table,
                BlockedPorts = List(c, "Interception:BlockedPorts", defaults.Interception.BlockedPorts, errors, ParseInt),
                VerifyIntervalSeconds = Int(c, "Interception:VerifyIntervalSeconds", defaults.Interception.VerifyIntervalSeconds, errors),
                RefusalSummarySeconds = Int(c, "Interception:RefusalSummarySeconds", defaults.Interception.RefusalSummarySeconds, errors),
            },
            Relay = new RelayOptions
            {
                Mode = Enum(c, "Relay:Mode", relayDefaults.Mode, errors),
                HeloName = c["Relay:HeloName"] ?? relayDefaults.HeloName,
                ConnectTimeoutSeconds = Int(c, "Relay:ConnectTimeoutSeconds", relayDefaults.ConnectTimeoutSeconds, errors),
                ReplyTimeoutSeconds = Int(c, "Relay:ReplyTimeoutSeconds", relayDefaults.ReplyTimeoutSeconds, errors),
                DataReplyTimeoutSeconds = Int(c, "Relay:DataReplyTimeoutSeconds", relayDefaults.DataReplyTimeoutSeconds, errors),
                PermittedLocalDestinations = List(c, "Relay:PermittedLocalDestinations", relayDefaults.PermittedLocalDestinations, errors, s => s),
                ReuseConnections = Bool(c, "Relay:ReuseConnections", relayDefaults.ReuseConnections, errors),
                ReuseIdleSeconds = Int(c, "Relay:ReuseIdleSeconds", relayDefaults.ReuseIdleSeconds, errors),
                ReuseMaxSeconds = Int(c, "Relay:ReuseMaxSeconds", relayDefaults.ReuseMaxSeconds, errors),
                ReuseMaxMessages = Int(c, "Relay:ReuseMaxMessages", relayDefaults.ReuseMaxMessages, errors),
                ReuseMaxIdlePerDestination = Int(c, "Relay:ReuseMaxIdlePerDestination", relayDefaults.ReuseMaxIdlePerDestination, errors),
            },
            Limits = new LimitsOptions
            {
                Default = Quota(c.GetSection("Limits:Default"), "Limits:Default", QuotaLimits.Defaults, errors),
                Users = c.GetSection("Limits:Users").GetChildren().ToDictionary(
                    u => u.Key,
                    u => Quota(u, $"Limits:Users:{u.Key}", new QuotaLimits(), errors),
                    StringComparer.Ordinal),
            },
            Smtp = new SmtpOptions
            {
                IdleTimeoutSeconds = Int(c, "Smtp:IdleTimeoutSeconds", defaults.Smtp.IdleTimeoutSeconds, errors),
                SessionTimeoutSeconds = Int(c, "Smtp:SessionTimeoutSeconds", defaults.Smtp.SessionTimeoutSeconds, errors),
                MaxCommandLineBytes = Int(c, "Smtp:MaxCommandLineBytes", defaults.Smtp.MaxCommandLineBytes, errors),
                MaxDataLineBytes = Int(c, "Smtp:MaxDataLineBytes", defaults.Smtp.MaxDataLineBytes, errors),
                CommandLineTimeoutSeconds = Int(c, "Smtp:CommandLineTimeoutSeconds", defaults.Smtp.CommandLineTimeoutSeconds, errors),
                MinDataBytesPerSecond = Int(c, "Smtp:MinDataBytesPerSecond", defaults.Smtp.MinDataBytesPerSecond, errors),
                SoftErrorLimit = Int(c, "Smtp:SoftErrorLimit", defaults.Smtp.SoftErrorLimit, errors),
                HardErrorLimit = Int(c, "Smtp:HardErrorLimit", defaults.Smtp.HardErrorLimit, errors),
                ErrorDelayMilliseconds = Int(c, "Smtp:ErrorDelayMilliseconds", defaults.Smtp.ErrorDelayMilliseconds, errors),
            },
            State = new StateOptions
            {
                Directory = c["State:Directory"] ?? defaults.State.Directory,
                RetentionDays = Int(c, "State:RetentionDays", defaults.State.RetentionDays, errors),
                MaxBytes = Long(c, "State:MaxBytes", defaults.State.MaxBytes, errors),
                MinFreeBytes = Long(c, "State:MinFreeBytes", defaults.State.MinFreeBytes, errors),
            },
            Control = new ControlOptions
            {
                SocketPath = c["Control:SocketPath"] ?? defaults.Control.SocketPath,
                AdminGroup = c["Control:AdminGroup"] ?? defaults.Control.AdminGroup,
            },
            Suspension = new SuspensionOptions
            {
                RefusalLimit = Int(c, "Suspension:RefusalLimit", defaults.Suspension.RefusalLimit, errors),
                RefusalWindowMinutes = Int(c, "Suspension:RefusalWindowMinutes", defaults.Suspension.RefusalWindowMinutes, errors),
                UnsentLimit = Int(c, "Suspension:UnsentLimit", defaults.Suspension.UnsentLimit, errors),
                FailureRatioPercent = Int(c, "Suspension:FailureRatioPercent", defaults.Suspension.FailureRatioPercent, errors),
                FailureMinimum = Int(c, "Suspension:FailureMinimum", defaults.Suspension.FailureMinimum, errors),
                FailureWindowMinutes = Int(c, "Suspension:FailureWindowMinutes", defaults.Suspension.FailureWindowMinutes, errors),
            },
            Alerts = new AlertsOptions
            {
                Command = c["Alerts:Command"] ?? defaults.Alerts.Command,
                TimeoutSeconds = Int(c, "Alerts:TimeoutSeconds", defaults.Alerts.TimeoutSeconds, errors),
            },
            Routes = new RoutesOptions
            {
                Users = c.GetSection("Routes:Users").GetChildren().ToDictionary(
                    u => u.Key,
                    u => List(c, $"Routes:Users:{u.Key}", (IReadOnlyList<string>)[], errors, s => s),
                    StringComparer.Ordinal),
            },
            Metrics = new MetricsOptions
            {
                Listen = c["Metrics:Listen"] ?? defaults.Metrics.Listen,
                PerUser = Bool(c, "Metrics:PerUser", defaults.Metrics.PerUser, errors),
            },
            Trace = new TraceOptions { IncludeProcess = Bool(c, "Trace:IncludeProcess", defaults.Trace.IncludeProcess, errors) },
            Attribution = new AttributionOptions { UnknownUids = Enum(c, "Attribution:UnknownUids", defaults.Attribution.UnknownUids, errors) },
        };
    }

    private static QuotaLimits Quota(IConfiguration section, string prefix, QuotaLimits fallback, List<string> errors)
    {
        int? Field(string name, int? fallbackValue) =>
            section[name] is { } text ? ParseOrError(text, $"{prefix}:{name}", errors, ParseInt) : fallbackValue;

        return new QuotaLimits
        {
            MessagesPerHour = Field("MessagesPerHour", fallback.MessagesPerHour),
            MessagesPerDay = Field("MessagesPerDay", fallback.MessagesPerDay),
            RecipientsPerHour = Field("RecipientsPerHour", fallback.RecipientsPerHour),
            RecipientsPerDay = Field("RecipientsPerDay", fallback.RecipientsPerDay),
            RecipientsPerMessage = Field("RecipientsPerMessage", fallback.RecipientsPerMessage),
            Connections = Field("Connections", fallback.Connections),
            MessageSizeBytes = section["MessageSizeBytes"] is { } size ? ParseOrError(size, $"{prefix}:MessageSizeBytes", errors, ParseLong) : fallback.MessageSizeBytes,
        };
    }

    private static bool Bool(IConfiguration c, string key, bool fallback, List<string> errors)
    {
        var text = c[key];
        if (text is null)
        {
            return fallback;
        }

        if (bool.TryParse(text, out var value))
        {
            return value;
        }

        errors.Add($"{Dotted(key)}: \"{text}\" is not true or false");
        return fallback;
    }

    private static int Int(IConfiguration c, string key, int fallback, List<string> errors) =>
        c[key] is { } text ? ParseOrError(text, key, errors, ParseInt) : fallback;

    private static long Long(IConfiguration c, string key, long fallback, List<string> errors) =>
        c[key] is { } text ? ParseOrError(text, key, errors, ParseLong) : fallback;

    private static TEnum Enum<TEnum>(IConfiguration c, string key, TEnum fallback, List<string> errors)
        where TEnum : struct, Enum
    {
        var text = c[key];
        if (text is null)
        {
            return fallback;
        }

        if (System.Enum.TryParse<TEnum>(text, ignoreCase: true, out var value) && System.Enum.IsDefined(value))
        {
            return value;
        }

        errors.Add($"{Dotted(key)}: \"{text}\" is not one of {string.Join(", ", System.Enum.GetNames<TEnum>())}");
        return fallback;
    }

    /// <summary>A configured list replaces the default list entirely (never appends to it).</summary>
    private static IReadOnlyList<T> List<T>(IConfiguration c, string key, IReadOnlyList<T> fallback, List<string> errors, Func<string, T> parse)
    {
        var section = c.GetSection(key);
        var items = section.GetChildren().ToList();
        if (items.Count == 0)
        {
            return section.Value == "" ? [] : fallback;
        }

        return items
            .OrderBy(i => int.TryParse(i.Key, out var index) ? index : int.MaxValue)
            .Select(i => ParseOrError(i.Value ?? "", $"{key}:{i.Key}", errors, parse))
            .ToList();
    }

    private static T ParseOrError<T>(string text, string key, List<string> errors, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (FormatException)
        {
            errors.Add($"{Dotted(key)}: \"{text}\" is not a {(typeof(T) == typeof(string) ? "string" : "number")}");
            return default!;
        }
    }

    private static int ParseInt(string text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : throw new FormatException();

    private static long ParseLong(string text) =>
        long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : throw new FormatException();

    /// <summary>"Limits:Users:alice:MessagesPerHour" → "Limits.Users.alice.MessagesPerHour", "Interception:Ports:0" → "Interception.Ports[0]", as the README writes keys.</summary>
    public static string Dotted(string key)
    {
        var parts = key.Split(':');
        var builder = new System.Text.StringBuilder(parts[0]);
        foreach (var part in parts.Skip(1))
        {
            if (int.TryParse(part, out _))
            {
                builder.Append('[').Append(part).Append(']');
            }
            else
            {
                builder.Append('.').Append(part);
            }
        }

        return builder.ToString();
    }
}
