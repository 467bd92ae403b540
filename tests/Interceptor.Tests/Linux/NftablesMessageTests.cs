using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <remarks>
/// The datagrams are verbatim what a 6.18 kernel multicast to NFNLGRP_NFTABLES (and answered to an NFT_MSG_GETGEN of
/// sequence 77) inside a throwaway namespace while nft ran each command named; a Python socket captured them.
/// </remarks>
[TestFixture]
public class NftablesMessageTests
{
    private const string AddOurTable =
        "48000000000a000001000000682400000100000215000100736d74705f696e746572636570746f720000000008000300000000000c00040000000000000000010800020000000000";

    private const string AddOtherTable =
        "3c000000000a00000100000069240000010000030a0001006f7468657200000008000300000000000c00040000000000000000020800020000000000";

    // Family ip (2), not inet: a table of the same name that is not ours.
    private const string AddIpTableOfOurName =
        "48000000000a0000010000006a2400000200000415000100736d74705f696e746572636570746f720000000008000300000000000c00040000000000000000030800020000000000";

    private const string AddChainToOurTable =
        "48000000030a0004010000006b2400000100000515000100736d74705f696e746572636570746f720000000006000300630000000c00020000000000000000010800060000000000";

    // The generation marker that ends every transaction (NFT_MSG_NEWGEN, generation 2).
    private const string NewGeneration =
        "2c0000000f0a000001000000682400000000000208000100000000020800020000002468080003006e667400";

    // `nft flush ruleset`: one datagram, four messages (our chain, our table, inet other, ip smtp_interceptor).
    private const string FlushRuleset =
        "40000000050a0000010000006c2400000100000615000100736d74705f696e746572636570746f720000000006000300630000000c00020000000000000000014000"
        + "0000020a0000010000006c2400000100000615000100736d74705f696e746572636570746f720000000008000300000000000c000400000000000000000134000000"
        + "020a0000010000006c240000010000060a0001006f7468657200000008000300000000000c000400000000000000000240000000020a0000010000006c2400000200"
        + "000615000100736d74705f696e746572636570746f720000000008000300000000000c0004000000000000000003";

    // The answer to GETGEN sequence 77: generation 6, by process "python3".
    private const string GenerationAnswer =
        "300000000f0a00004d0000007023edc7000000060800010000000006080002000000243f0c000300707974686f6e3300";

    private static readonly HashSet<string> Ours = new(["smtp_interceptor", "smtp_interceptor_guard"], StringComparer.Ordinal);

    [Test]
    public void The_generation_request_is_a_bare_getgen_to_the_kernel()
    {
        var buffer = new byte[64];
        var length = NftablesMessage.EncodeGetGeneration(buffer, 77);
        Assert.That(Convert.ToHexStringLower(buffer.AsSpan(0, length)), Is.EqualTo("14000000100a01004d0000000000000000000000"));
    }

    [Test]
    public void The_generation_is_read_from_the_kernels_answer()
    {
        var kind = NftablesMessage.TryDecodeGeneration(Convert.FromHexString(GenerationAnswer), 77, out var generation, out _);
        Assert.Multiple(() =>
        {
            Assert.That(kind, Is.EqualTo(NetlinkFrameKind.Payload));
            Assert.That(generation, Is.EqualTo(6u));
        });
    }

    [Test]
    public void An_answer_to_another_request_or_an_error_or_another_message_is_not_a_generation()
    {
        // NLMSG_ERROR, sequence 77, error -1 (EPERM), then the request's own header.
        const string errorEperm = "24000000020000004d00000000000000" + "ffffffff" + "14000000100a01004d00000000000000";
        Assert.Multiple(() =>
        {
            Assert.That(NftablesMessage.TryDecodeGeneration(Convert.FromHexString(GenerationAnswer), 78, out _, out _), Is.EqualTo(NetlinkFrameKind.OtherSequence));
            Assert.That(NftablesMessage.TryDecodeGeneration(Convert.FromHexString(errorEperm), 77, out _, out var errno), Is.EqualTo(NetlinkFrameKind.Error));
            Assert.That(errno, Is.EqualTo(1));
            Assert.That(NftablesMessage.TryDecodeGeneration(Convert.FromHexString(AddOurTable[..16] + "4d000000" + AddOurTable[24..]), 77, out _, out _), Is.EqualTo(NetlinkFrameKind.Malformed));
            Assert.That(NftablesMessage.TryDecodeGeneration(Convert.FromHexString(GenerationAnswer).AsSpan(0, 20), 77, out _, out _), Is.EqualTo(NetlinkFrameKind.Malformed));
        });
    }

    [TestCase(AddOurTable, true)]
    [TestCase(AddChainToOurTable, true)]
    [TestCase(FlushRuleset, true)]
    [TestCase(AddOtherTable, false)]
    [TestCase(AddIpTableOfOurName, false)]
    [TestCase(NewGeneration, false)]
    public void A_notification_counts_when_it_touches_one_of_our_inet_tables(string hex, bool ours) =>
        Assert.That(NftablesMessage.Classify(Convert.FromHexString(hex), Ours), Is.EqualTo(ours ? NftablesChange.Watched : NftablesChange.None));

    [Test]
    public void A_flush_is_seen_through_any_of_its_messages()
    {
        // The flush's datagram without its first two messages (our chain and our table): only "inet other" and "ip
        // smtp_interceptor" are left, neither ours.
        var flush = Convert.FromHexString(FlushRuleset);
        var rest = flush[(0x40 + 0x40)..];
        Assert.Multiple(() =>
        {
            Assert.That(NftablesMessage.Classify(rest, Ours), Is.EqualTo(NftablesChange.None));
            Assert.That(NftablesMessage.Classify([.. rest, .. Convert.FromHexString(AddChainToOurTable)], Ours), Is.EqualTo(NftablesChange.Watched));
            Assert.That(NftablesMessage.Classify(flush, new HashSet<string>(["other"], StringComparer.Ordinal)), Is.EqualTo(NftablesChange.Watched));
        });
    }

    [Test]
    public void A_cut_or_inconsistent_datagram_is_taken_as_a_change_of_ours()
    {
        var whole = Convert.FromHexString(AddOtherTable);
        var tooLong = (byte[])whole.Clone();
        tooLong[0] = 0x7f;
        var badAttribute = (byte[])whole.Clone();
        badAttribute[20] = 0xff; // the table name's attribute length runs past the message
        Assert.Multiple(() =>
        {
            Assert.That(NftablesMessage.Classify(whole.AsSpan(0, 10), Ours), Is.EqualTo(NftablesChange.Malformed));
            Assert.That(NftablesMessage.Classify(tooLong, Ours), Is.EqualTo(NftablesChange.Malformed));
            Assert.That(NftablesMessage.Classify(badAttribute, Ours), Is.EqualTo(NftablesChange.Malformed));
            Assert.That(NftablesMessage.Classify([.. whole, .. whole[..18]], Ours), Is.EqualTo(NftablesChange.Malformed));
        });
    }
}
