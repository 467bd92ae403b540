using System.Globalization;

namespace Interceptor.Core.Options;

/// <summary>
/// The configuration key of a property whose name differs from it: a typed value keeps the key admins already write,
/// which states its unit (<c>Smtp.IdleTimeoutSeconds</c> binds <see cref="SmtpOptions.IdleTimeout"/>). The
/// suffix of the key (Milliseconds, Seconds, Minutes, Hours, Days) is the unit a <see cref="TimeSpan"/> is written in.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class ConfigurationKeyAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>An amount of bytes (a line, a database, free space); written in configuration as a plain number.</summary>
public readonly record struct ByteSize(long Bytes) : IComparable<ByteSize>
{
    public static ByteSize FromBytes(long bytes) => new(bytes);

    public int CompareTo(ByteSize other) => Bytes.CompareTo(other.Bytes);

    public static bool operator <(ByteSize left, ByteSize right) => left.Bytes < right.Bytes;

    public static bool operator >(ByteSize left, ByteSize right) => left.Bytes > right.Bytes;

    public static bool operator <=(ByteSize left, ByteSize right) => left.Bytes <= right.Bytes;

    public static bool operator >=(ByteSize left, ByteSize right) => left.Bytes >= right.Bytes;

    /// <summary>As an <see cref="int"/>, for buffers and line limits the validator keeps well below 2 GiB.</summary>
    public int ToInt32() => checked((int)Bytes);

    public override string ToString() => Bytes.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A transfer rate in bytes per second; 0 means no minimum.</summary>
public readonly record struct DataRate(long BytesPerSecond)
{
    public static DataRate FromBytesPerSecond(long bytesPerSecond) => new(bytesPerSecond);

    /// <summary>The bytes this rate moves in <paramref name="elapsed"/>.</summary>
    public double BytesIn(TimeSpan elapsed) => BytesPerSecond * elapsed.TotalSeconds;

    public override string ToString() => BytesPerSecond.ToString(CultureInfo.InvariantCulture);
}
