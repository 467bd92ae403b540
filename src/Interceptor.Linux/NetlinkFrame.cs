using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>What the first netlink message of a received datagram is, before its payload is decoded.</summary>
internal enum NetlinkFrameKind
{
    /// <summary>Truncated or inconsistent: nothing in it may be trusted.</summary>
    Malformed,

    /// <summary>A late answer to an earlier request on the same socket.</summary>
    OtherSequence,

    /// <summary>An answer with a payload of its own message type, for the caller to decode.</summary>
    Payload,

    /// <summary>NLMSG_ERROR with ENOENT, an ack without an answer, or NLMSG_DONE: the kernel has no such object.</summary>
    NotFound,

    /// <summary>NLMSG_ERROR with another errno.</summary>
    Error,
}

/// <summary>The netlink message header (struct nlmsghdr) and the two message types every netlink family shares.</summary>
internal static class NetlinkFrame
{
    public const int HeaderLength = 16;
    public const ushort Error = 2;    // NLMSG_ERROR
    public const ushort Done = 3;     // NLMSG_DONE
    private const int Enoent = 2;

    /// <summary>
    /// Classifies the first message of <paramref name="datagram"/>: its type and bytes (header included) for a payload,
    /// the errno of an error. Sequence numbers tell this request's answer from a stale one.
    /// </summary>
    public static NetlinkFrameKind ReadFirst(
        ReadOnlySpan<byte> datagram, uint expectedSequence, out ushort type, out ReadOnlySpan<byte> message, out int errno)
    {
        type = 0;
        message = default;
        errno = 0;
        if (datagram.Length < HeaderLength)
        {
            return NetlinkFrameKind.Malformed;
        }

        var length = MemoryMarshal.Read<uint>(datagram);
        type = MemoryMarshal.Read<ushort>(datagram[4..]);
        var sequence = MemoryMarshal.Read<uint>(datagram[8..]);
        if (length < HeaderLength || length > (uint)datagram.Length)
        {
            return NetlinkFrameKind.Malformed;
        }

        message = datagram[..(int)length];
        if (sequence != expectedSequence)
        {
            return NetlinkFrameKind.OtherSequence;
        }

        switch (type)
        {
            case Error:
                if (message.Length < HeaderLength + 4)
                {
                    return NetlinkFrameKind.Malformed;
                }

                // nlmsgerr.error is a negative errno; 0 is an ack, which carries no answer.
                errno = -MemoryMarshal.Read<int>(message[HeaderLength..]);
                return errno is 0 or Enoent ? NetlinkFrameKind.NotFound : NetlinkFrameKind.Error;
            case Done:
                return NetlinkFrameKind.NotFound;
            default:
                return NetlinkFrameKind.Payload;
        }
    }
}
