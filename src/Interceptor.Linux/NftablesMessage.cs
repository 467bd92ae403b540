using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Interceptor.Linux;

/// <summary>What the nf_tables messages of one received datagram say about the tables a caller watches.</summary>
internal enum NftablesChange
{
    /// <summary>Nothing in it changed a watched table: another table, another family, or a generation marker.</summary>
    None,

    /// <summary>A watched table (or something in it) was added, changed or deleted.</summary>
    Watched,

    /// <summary>Truncated or inconsistent: the caller must assume a watched table changed.</summary>
    Malformed,
}

/// <summary>
/// Byte layout of nf_tables' generation request (NFT_MSG_GETGEN) and its answer, and of the change notifications the
/// kernel multicasts to NFNLGRP_NFTABLES after every committed transaction (what <c>nft monitor</c> prints). Kept apart
/// from the sockets so it can be checked byte by byte without a kernel.
/// </summary>
/// <remarks>
/// Constants from linux/netfilter/nfnetlink.h and nf_tables.h. Every nf_tables object message (table, chain, rule,
/// set, set elements, stateful object, flowtable) carries its table's name as attribute 1 (NFTA_TABLE_NAME,
/// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, …), a NUL-terminated string. Set elements a rule adds from the packet path
/// (a meter's per-user entries) are not notified and do not move the generation.
/// </remarks>
internal static class NftablesMessage
{
    public const int GenerationRequestLength = NetlinkFrame.HeaderLength + NfgenmsgLength;

    /// <summary>NFNLGRP_NFTABLES: the multicast group of nf_tables' change notifications.</summary>
    public const int ChangeGroup = 7;

    private const int NfgenmsgLength = 4;
    private const byte SubsystemNftables = 10; // NFNL_SUBSYS_NFTABLES
    private const byte MessageNewGeneration = 15; // NFT_MSG_NEWGEN
    private const byte MessageGetGeneration = 16; // NFT_MSG_GETGEN
    private const ushort AttributeTable = 1; // NFTA_*_TABLE, NFTA_TABLE_NAME
    private const ushort AttributeGenerationId = 1; // NFTA_GEN_ID, a be32
    private const ushort NlmFRequest = 1;
    private const byte FamilyInet = 1; // NFPROTO_INET

    /// <summary>Writes an NFT_MSG_GETGEN request (no attributes: the answer is the whole ruleset's generation).</summary>
    public static int EncodeGetGeneration(Span<byte> buffer, uint sequence)
    {
        var message = buffer[..GenerationRequestLength];
        message.Clear();
        MemoryMarshal.Write(message, (uint)GenerationRequestLength);
        MemoryMarshal.Write(message[4..], (ushort)((SubsystemNftables << 8) | MessageGetGeneration));
        MemoryMarshal.Write(message[6..], NlmFRequest);
        MemoryMarshal.Write(message[8..], sequence);

        // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0 (the port id stays 0 too: addressed to the kernel).
        return GenerationRequestLength;
    }

    /// <summary>
    /// Reads the answer to the GETGEN request numbered <paramref name="sequence"/>: the ruleset's generation (the
    /// kernel's nft base sequence, moved by every committed transaction in this network namespace).
    /// </summary>
    public static NetlinkFrameKind TryDecodeGeneration(ReadOnlySpan<byte> datagram, uint sequence, out uint generation, out int errno)
    {
        generation = 0;
        var kind = NetlinkFrame.ReadFirst(datagram, sequence, out var type, out var message, out errno);
        if (kind != NetlinkFrameKind.Payload)
        {
            return kind;
        }

        if (type != ((SubsystemNftables << 8) | MessageNewGeneration) || message.Length < NetlinkFrame.HeaderLength + NfgenmsgLength)
        {
            return NetlinkFrameKind.Malformed;
        }

        var attributes = message[(NetlinkFrame.HeaderLength + NfgenmsgLength)..];
        var offset = 0;
        while (NetlinkAttribute.TryNext(attributes, ref offset, out var attribute, out var payload))
        {
            if (attribute == AttributeGenerationId && payload.Length == 4)
            {
                generation = BinaryPrimitives.ReadUInt32BigEndian(payload);
                return NetlinkFrameKind.Payload;
            }
        }

        return NetlinkFrameKind.Malformed;
    }

    /// <summary>
    /// Whether any message of a notification datagram touches one of <paramref name="inetTables"/> (family inet, by
    /// name). Messages of other netfilter subsystems and the generation marker that ends each transaction are not
    /// changes; a message of nf_tables that names no table is taken as one, since it cannot be ruled out.
    /// </summary>
    public static NftablesChange Classify(ReadOnlySpan<byte> datagram, IReadOnlySet<string> inetTables)
    {
        var found = NftablesChange.None;
        var rest = datagram;
        while (rest.Length > 0)
        {
            if (rest.Length < NetlinkFrame.HeaderLength)
            {
                return NftablesChange.Malformed;
            }

            var length = MemoryMarshal.Read<uint>(rest);
            if (length < NetlinkFrame.HeaderLength || length > (uint)rest.Length)
            {
                return NftablesChange.Malformed;
            }

            var message = rest[..(int)length];
            rest = rest[Math.Min(NetlinkAttribute.Align4((int)length), rest.Length)..];
            var change = ClassifyOne(message, inetTables);
            if (change == NftablesChange.Malformed)
            {
                return change;
            }

            if (change == NftablesChange.Watched)
            {
                found = change;
            }
        }

        return found;
    }

    private static NftablesChange ClassifyOne(ReadOnlySpan<byte> message, IReadOnlySet<string> inetTables)
    {
        var type = MemoryMarshal.Read<ushort>(message[4..]);
        if (type >> 8 != SubsystemNftables || (type & 0xFF) == MessageNewGeneration)
        {
            // NLMSG_* control messages and other subsystems (type < 0x100 or another high byte) carry no table change.
            return NftablesChange.None;
        }

        if (message.Length < NetlinkFrame.HeaderLength + NfgenmsgLength)
        {
            return NftablesChange.Malformed;
        }

        if (message[NetlinkFrame.HeaderLength] != FamilyInet)
        {
            return NftablesChange.None;
        }

        var attributes = message[(NetlinkFrame.HeaderLength + NfgenmsgLength)..];
        var offset = 0;
        while (NetlinkAttribute.TryNext(attributes, ref offset, out var attribute, out var payload))
        {
            if (attribute == AttributeTable)
            {
                var end = payload.IndexOf((byte)0);
                var name = Encoding.UTF8.GetString(end < 0 ? payload : payload[..end]);
                return inetTables.Contains(name) ? NftablesChange.Watched : NftablesChange.None;
            }
        }

        return offset < 0 ? NftablesChange.Malformed : NftablesChange.Watched;
    }
}
