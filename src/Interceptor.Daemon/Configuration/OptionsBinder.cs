using System.Collections;
using System.Globalization;
using System.Reflection;
using Interceptor.Core.Options;
using Microsoft.Extensions.Configuration;

namespace Interceptor.Daemon.Configuration;

/// <summary>
/// Binds a configuration onto the option records by reflection, key by key as <see cref="OptionKeys"/> names them.
/// A key left out keeps the record's default; a configured list replaces the default list (never appends to it); a
/// value that does not parse is an error naming the key, and its field keeps the type's zero, which the validator
/// then also reports as out of range.
/// </summary>
internal static class OptionsBinder
{
    public static InterceptorOptions Bind(IConfiguration root, List<string> errors) =>
        (InterceptorOptions)BindRecord(typeof(InterceptorOptions), new InterceptorOptions(), root, "", errors);

    private static object BindRecord(Type record, object defaults, IConfiguration section, string prefix, List<string> errors)
    {
        // A copy, so a shared default instance (QuotaLimits.Defaults) is never changed.
        var bound = record.GetMethod("<Clone>$")!.Invoke(defaults, null)!;
        foreach (var property in OptionKeys.Properties(record))
        {
            var key = OptionKeys.KeyOf(property);
            var child = section.GetSection(key);
            if (child.Value is null && !child.GetChildren().Any())
            {
                continue;
            }

            property.SetValue(bound, BindValue(property.PropertyType, property.GetValue(bound), child, prefix + key, errors));
        }

        return bound;
    }

    private static object? BindValue(Type type, object? current, IConfigurationSection section, string key, List<string> errors)
    {
        if (OptionKeys.IsSection(type))
        {
            return BindRecord(type, current ?? Activator.CreateInstance(type)!, section, key + ":", errors);
        }

        if (OptionKeys.ListElement(type) is { } element)
        {
            // A scalar where a list belongs is reported as an unknown key; the default list stays.
            return section.Value is { Length: > 0 } ? current : BindList(element, section, key, errors);
        }

        if (OptionKeys.DictionaryValue(type) is { } entry)
        {
            var dictionary = (IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(typeof(string), entry), StringComparer.Ordinal)!;
            foreach (var child in section.GetChildren())
            {
                dictionary[child.Key] = BindValue(entry, null, child, $"{key}:{child.Key}", errors);
            }

            return dictionary;
        }

        return Parse(Nullable.GetUnderlyingType(type) ?? type, section.Value ?? "", key, errors);
    }

    /// <summary>Items in index order; an empty list (<c>[]</c>) is an empty value. An item may be a record (its fields keyed "List:0:Field").</summary>
    private static IList BindList(Type element, IConfigurationSection section, string key, List<string> errors)
    {
        var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(element))!;
        foreach (var item in section.GetChildren().OrderBy(i => int.TryParse(i.Key, out var index) ? index : int.MaxValue))
        {
            var itemKey = $"{key}:{item.Key}";
            list.Add(OptionKeys.IsSection(element)
                ? BindRecord(element, Activator.CreateInstance(element)!, item, itemKey + ":", errors)
                : Parse(element, item.Value ?? "", itemKey, errors));
        }

        return list;
    }

    private static object? Parse(Type type, string text, string key, List<string> errors)
    {
        if (type == typeof(string))
        {
            return text;
        }

        if (type == typeof(bool))
        {
            return bool.TryParse(text, out var flag) ? flag : Error(false, $"\"{text}\" is not true or false");
        }

        if (type == typeof(double))
        {
            // Scanner scores (Scan.RejectScore): 15, 7.5.
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && double.IsFinite(real)
                ? real
                : Error(0.0, $"\"{text}\" is not a number");
        }

        if (type.IsEnum)
        {
            return Enum.TryParse(type, text, ignoreCase: true, out var named) && Enum.IsDefined(type, named!)
                ? named
                : Error(Activator.CreateInstance(type), $"\"{text}\" is not one of {string.Join(", ", Enum.GetNames(type))}");
        }

        // Durations were always whole numbers of their key's unit, so they still parse as int.
        var number = type == typeof(int) || type == typeof(TimeSpan)
            ? ParseInteger(text, int.MinValue, int.MaxValue)
            : ParseInteger(text, long.MinValue, long.MaxValue);
        if (number is not { } value)
        {
            return Error(type.IsValueType ? Activator.CreateInstance(type) : null, $"\"{text}\" is not a number");
        }

        return type switch
        {
            _ when type == typeof(int) => (int)value,
            _ when type == typeof(long) => value,
            _ when type == typeof(TimeSpan) => Duration(value, OptionKeys.DurationUnit(key)),
            _ when type == typeof(ByteSize) => ByteSize.FromBytes(value),
            _ when type == typeof(DataRate) => DataRate.FromBytesPerSecond(value),
            _ => throw new InvalidOperationException($"{key}: the options records use a type the binder does not know ({type.Name})"),
        };

        object? Error(object? zero, string problem)
        {
            errors.Add($"{ConfigurationLoader.Dotted(key)}: {problem}");
            return zero;
        }
    }

    private static long? ParseInteger(string text, long min, long max) =>
        long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max ? value : null;

    /// <summary>A duration too long for <see cref="TimeSpan"/> (int.MaxValue days) is held at its maximum for the validator to refuse.</summary>
    private static TimeSpan Duration(long count, TimeSpan unit) =>
        Math.Abs((double)count * unit.Ticks) < TimeSpan.MaxValue.Ticks ? unit * count : (count < 0 ? TimeSpan.MinValue : TimeSpan.MaxValue);
}
