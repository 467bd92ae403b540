using System.Globalization;

namespace Interceptor.Daemon.Control;

/// <summary>The admin's short durations ("30m", "1h", "2d"), as `--since` takes them, and their printed form.</summary>
public static class Durations
{
    /// <summary>The store keeps about this much history; asking for more is a mistake worth telling.</summary>
    public static readonly TimeSpan Longest = TimeSpan.FromDays(366);

    /// <summary>"30s", "30m", "1h", "2d" or "1w": a positive whole number and one unit; null when it is not one.</summary>
    public static TimeSpan? TryParse(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length < 2 || text.Length > 12)
        {
            return null;
        }

        var unit = text[^1] switch
        {
            's' => TimeSpan.FromSeconds(1),
            'm' => TimeSpan.FromMinutes(1),
            'h' => TimeSpan.FromHours(1),
            'd' => TimeSpan.FromDays(1),
            'w' => TimeSpan.FromDays(7),
            _ => (TimeSpan?)null,
        };

        // NumberStyles.None: no sign, no spaces, no thousands separators; "1.5h" is not accepted either.
        if (unit is null || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count <= 0)
        {
            return null;
        }

        // Compared before multiplying, so "99999999999d" cannot overflow.
        return count > Longest.Ticks / unit.Value.Ticks ? null : unit.Value * count;
    }

    /// <summary>Like <see cref="TryParse"/>, but a wrong text is an error naming the option.</summary>
    /// <exception cref="ArgumentException">Not a duration, zero, or longer than <see cref="Longest"/>.</exception>
    public static TimeSpan Parse(string text, string option) =>
        TryParse(text) ?? throw new ArgumentException(Problem(text, option));

    /// <summary>What is wrong with a text that <see cref="TryParse"/> refused, naming the option.</summary>
    public static string Problem(string? text, string option) =>
        string.Create(CultureInfo.InvariantCulture, $"{option}: \"{text}\" is not a duration such as 30m, 1h, 2d or 1w (a positive whole number and s, m, h, d or w; at most {Longest.TotalDays:0} days)");

    /// <summary>"3d 4h", "2h 13m", "5m 2s", "40s": the two largest units, for uptimes and ages.</summary>
    public static string Format(TimeSpan span)
    {
        if (span < TimeSpan.Zero)
        {
            span = TimeSpan.Zero;
        }

        var c = CultureInfo.InvariantCulture;
        return span.TotalDays >= 1 ? string.Create(c, $"{(int)span.TotalDays}d {span.Hours}h")
            : span.TotalHours >= 1 ? string.Create(c, $"{span.Hours}h {span.Minutes}m")
            : span.TotalMinutes >= 1 ? string.Create(c, $"{span.Minutes}m {span.Seconds}s")
            : string.Create(c, $"{span.Seconds}s");
    }
}
