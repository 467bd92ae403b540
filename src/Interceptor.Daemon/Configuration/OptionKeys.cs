using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Interceptor.Core.Options;

namespace Interceptor.Daemon.Configuration;

/// <summary>One configuration key as the option records declare it, with its default written as an admin writes it.</summary>
/// <param name="Path">"Smtp:IdleTimeoutSeconds"; a list is "Interception:Ports"; a name an admin chooses is "*" ("Limits:Users:*:Connections").</param>
/// <param name="IsList">Whether the key holds a list (its items are "Path:0", "Path:1", ...).</param>
/// <param name="Default">The default as JSON text: 300, "smtp_interceptor", [25]; null under a name an admin chooses.</param>
public sealed record OptionKey(string Path, bool IsList, string? Default)
{
    /// <summary>For a list of records (<c>Relay.Smarthosts</c>): the fields an item may have ("Path:0:Name"); else null.</summary>
    public IReadOnlyList<string>? ItemFields { get; init; }

    /// <summary>The key as the README writes it: "Limits.Users.&lt;name&gt;.Connections".</summary>
    public string Dotted => Path.Replace(":*", ".<name>", StringComparison.Ordinal).Replace(':', '.');
}

/// <summary>
/// The configuration keys, derived by reflection from <see cref="InterceptorOptions"/> and the records under it: the one
/// source of which keys exist, what type each has and what its default is. The loader binds and checks unknown keys
/// with it, and a test holds the README and the packaged configuration to it.
/// </summary>
public static class OptionKeys
{
    public static IReadOnlyList<OptionKey> All { get; } = [.. Walk(typeof(InterceptorOptions), new InterceptorOptions(), "")];

    /// <summary>Whether a leaf of the bound configuration ("Limits:Users:bob:Connections", "Interception:Ports:0") is a key.</summary>
    public static bool IsKnown(string path, string? value)
    {
        var parts = path.Split(':');
        return All.Any(key => Matches(key, parts, value));
    }

    /// <summary>The key a property is written under: its own name, or <see cref="ConfigurationKeyAttribute.Name"/>.</summary>
    internal static string KeyOf(PropertyInfo property) =>
        property.GetCustomAttribute<ConfigurationKeyAttribute>()?.Name ?? property.Name;

    /// <summary>The configurable properties of an options record, in declaration order.</summary>
    internal static IEnumerable<PropertyInfo> Properties(Type record) =>
        record.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
            .OrderBy(p => p.MetadataToken);

    /// <summary>An options record (a section of keys) rather than a value.</summary>
    internal static bool IsSection(Type type) =>
        type.IsClass && type != typeof(string) && type.Namespace == typeof(InterceptorOptions).Namespace;

    internal static Type? ListElement(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? type.GetGenericArguments()[0] : null;

    internal static Type? DictionaryValue(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>) ? type.GetGenericArguments()[1] : null;

    /// <summary>The unit a duration key is written in, from the suffix of its name ("...Seconds").</summary>
    internal static TimeSpan DurationUnit(string key) =>
        key.EndsWith("Milliseconds", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(1)
        : key.EndsWith("Seconds", StringComparison.Ordinal) ? TimeSpan.FromSeconds(1)
        : key.EndsWith("Minutes", StringComparison.Ordinal) ? TimeSpan.FromMinutes(1)
        : key.EndsWith("Hours", StringComparison.Ordinal) ? TimeSpan.FromHours(1)
        : key.EndsWith("Days", StringComparison.Ordinal) ? TimeSpan.FromDays(1)
        : throw new InvalidOperationException($"{key}: a duration key must end in its unit (Milliseconds, Seconds, Minutes, Hours or Days)");

    /// <summary>A value as it is written in the configuration (durations in the unit of their key).</summary>
    internal static string Written(object? value, string key) => value switch
    {
        null => "null",
        TimeSpan duration => ((long)(duration / DurationUnit(key))).ToString(CultureInfo.InvariantCulture),
        ByteSize size => size.Bytes.ToString(CultureInfo.InvariantCulture),
        DataRate rate => rate.BytesPerSecond.ToString(CultureInfo.InvariantCulture),
        bool flag => flag ? "true" : "false",
        Enum name => JsonSerializer.Serialize(name.ToString()),
        string text => JsonSerializer.Serialize(text),
        System.Collections.IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Select(i => Written(i, key))) + "]",
        _ when IsSection(value.GetType()) && !value.GetType().IsArray => "{ " + string.Join(", ", Properties(value.GetType())
            .Select(p => $"{JsonSerializer.Serialize(KeyOf(p))}: {Written(p.GetValue(value), key)}")) + " }",
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"{key}: no configuration form for {value.GetType().Name}"),
    };

    private static IEnumerable<OptionKey> Walk(Type record, object? defaults, string prefix)
    {
        foreach (var property in Properties(record))
        {
            var path = prefix + KeyOf(property);
            var type = property.PropertyType;
            var value = defaults is null ? null : property.GetValue(defaults);
            if (IsSection(type))
            {
                foreach (var key in Walk(type, value, path + ":"))
                {
                    yield return key;
                }
            }
            else if (DictionaryValue(type) is { } entry)
            {
                if (IsSection(entry))
                {
                    foreach (var key in Walk(entry, null, path + ":*:"))
                    {
                        yield return key;
                    }
                }
                else
                {
                    yield return new OptionKey(path + ":*", ListElement(entry) is not null, null);
                }
            }
            else
            {
                var element = ListElement(type);
                yield return new OptionKey(path, element is not null, defaults is null ? null : Written(value, path))
                {
                    ItemFields = element is not null && IsSection(element) ? [.. Properties(element).Select(KeyOf)] : null,
                };
            }
        }
    }

    private static bool Matches(OptionKey key, string[] parts, string? value)
    {
        var pattern = key.Path.Split(':');
        var length = pattern.Length;
        if (key.ItemFields is { } fields && parts.Length == length + 2)
        {
            // One field of one record in a list: Relay:Smarthosts:0:Name.
            if (!int.TryParse(parts[length], NumberStyles.None, CultureInfo.InvariantCulture, out _)
                || !fields.Contains(parts[length + 1], StringComparer.OrdinalIgnoreCase))
            {
                return false;
            }
        }
        else if (key.ItemFields is null && key.IsList && parts.Length == length + 1)
        {
            // One item of a list: Interception:Ports:0.
            if (!int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                return false;
            }
        }
        else if (parts.Length != length || (key.IsList && value != ""))
        {
            // A list itself is a leaf only when empty ("Ports": []).
            return false;
        }

        for (var i = 0; i < length; i++)
        {
            if (pattern[i] != "*" && !pattern[i].Equals(parts[i], StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }
}
