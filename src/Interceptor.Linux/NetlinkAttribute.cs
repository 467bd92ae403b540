using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// Netlink attributes (struct nlattr, linux/netlink.h): a header of u16 length (header included,
/// padding not) and u16 type in host order, the payload, then padding to 4 bytes.
/// </summary>
internal static class NetlinkAttribute
{
    public const ushort NlaFNested = 1 << 15;

    // ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER): the flag bits are not part of the type.
    public const ushort NlaTypeMask = 0x3FFF;

    /// <summary>
    /// Steps over one netlink attribute (header: u16 length including the header, u16 type; the
    /// next one starts at the length rounded up to 4). Returns false at the end of the area; a
    /// malformed attribute ends the walk too and sets <paramref name="offset"/> to -1.
    /// </summary>
    public static bool TryNext(ReadOnlySpan<byte> area, ref int offset, out ushort type, out ReadOnlySpan<byte> payload)
    {
        type = 0;
        payload = default;
        if (offset < 0 || offset >= area.Length)
        {
            return false;
        }

        if (area.Length - offset < 4)
        {
            offset = -1;
            return false;
        }

        var length = MemoryMarshal.Read<ushort>(area[offset..]);
        if (length < 4 || length > area.Length - offset)
        {
            offset = -1;
            return false;
        }

        type = (ushort)(MemoryMarshal.Read<ushort>(area[(offset + 2)..]) & NlaTypeMask);
        payload = area.Slice(offset + 4, length - 4);
        offset += Align4(length);
        return true;
    }

    public static int Align4(int length) => (length + 3) & ~3;

    public static int WriteNestHeader(Span<byte> message, int offset, ushort type, int length)
    {
        MemoryMarshal.Write(message[offset..], (ushort)length);
        MemoryMarshal.Write(message[(offset + 2)..], (ushort)(type | NlaFNested));
        return offset + 4;
    }
}
