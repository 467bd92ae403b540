using System.Collections.Frozen;

namespace Interceptor.Core.Metrics;

/// <summary>
/// The label value of each member of an enum, built once: recording a measurement on the relay path must not
/// allocate a string (as <c>ToString().ToLowerInvariant()</c> would) for a value that never changes.
/// </summary>
public sealed class LabelValues<TEnum>
    where TEnum : struct, Enum
{
    private readonly FrozenDictionary<TEnum, string> _values;

    public LabelValues(Func<TEnum, string> format)
    {
        _values = Enum.GetValues<TEnum>().ToFrozenDictionary(v => v, format);
    }

    /// <summary>Every member's label value, in declaration order (for <see cref="IMetricsSource.RecordZeros"/>).</summary>
    public IEnumerable<string> All => Enum.GetValues<TEnum>().Select(v => _values[v]);

    /// <summary>The member's label value; an undefined value (a cast integer) gets its number.</summary>
    public string this[TEnum value] => _values.TryGetValue(value, out var label) ? label : value.ToString();
}

/// <summary>The two spellings the labels have always had.</summary>
public static class LabelValues
{
    /// <summary>Lower case, as the outcome and source labels.</summary>
    public static LabelValues<TEnum> LowerCase<TEnum>()
        where TEnum : struct, Enum => new(v => v.ToString().ToLowerInvariant());

    /// <summary>The member's name as declared, as the refusal reason labels.</summary>
    public static LabelValues<TEnum> AsDeclared<TEnum>()
        where TEnum : struct, Enum => new(v => v.ToString());
}
