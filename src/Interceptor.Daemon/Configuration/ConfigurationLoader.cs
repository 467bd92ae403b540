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
/// Bound by <see cref="OptionsBinder"/> rather than Microsoft's binder: that one appends configured list items to the
/// defaults, ignores unknown keys, and its errors do not name the key an admin typed. The keys themselves come from the
/// option records (<see cref="OptionKeys"/>).
/// </summary>
public static partial class ConfigurationLoader
{
    public const string EnvironmentPrefix = "SMTPI_";

    /// <summary>
    /// Loads and validates a configuration. <paramref name="hostName"/> gives this host's name for an unset
    /// <c>Relay.HeloName</c>: only the commands that relay pass it (<see cref="HostName.Resolve"/>, one DNS lookup);
    /// without it the name stays empty and nothing is looked up (check-config, rules, the admin verbs).
    /// </summary>
    public static InterceptorOptions Load(string? path, IDictionary<string, string?>? environment = null, Func<string>? hostName = null)
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
        var options = OptionsBinder.Bind(root, errors);
        if (options.Relay.HeloName.Length == 0 && hostName is not null)
        {
            options = options with { Relay = options.Relay with { HeloName = hostName() } };
        }

        errors.AddRange(OptionsValidator.Validate(options));
        errors.AddRange(HostLimits.Check(options));
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

            if (!OptionKeys.IsKnown(key, value))
            {
                errors.Add($"{Dotted(key)}: unknown key (see the README for the configuration keys)");
            }
        }
    }

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
