// Package framing is the message layer of Ferry's generated Go SDKs. A
// service whose gateway config says framing = "lines" or framing = "u32be"
// is still a plain byte stream through the gateway; the SDK wraps that
// stream (a net.Conn) in a LinesConn (NewLines) or a U32BEConn (NewU32BE),
// which send and receive whole messages of at most max bytes, the
// service's max_message.
//
// The rules, byte by byte:
//
// lines: a message is UTF-8 text ended by "\n" (0x0A). Recv strips the
// "\n" and, if the byte before it is "\r" (0x0D), that one "\r" ("a\r\r\n"
// is the message "a\r"); neither counts toward max, so a line of max bytes
// followed by "\r\n" is accepted, and a received message of more than max
// bytes (after stripping) is an error. So is a message that is not valid
// UTF-8. At the end of the stream, a last line without "\n" is a message
// as it is (a "\r" at its end is kept); then, as at the end of a stream
// that ends after a "\n" or is empty, Recv returns io.EOF. Receiving is
// bounded: a LinesConn holds at most max+1 bytes of an unfinished line
// plus its fixed read buffer, however long the line the peer sends. Send
// writes the message and "\n" with one Write; a message containing "\n",
// longer than max bytes or not valid UTF-8 is an error and nothing is
// sent.
//
// u32be: a message is its length n as a 4-byte big-endian unsigned integer
// followed by n bytes; the 4 bytes do not count toward max, and n = 0 is a
// valid, empty message. Recv fails on a length over max as soon as it has
// the 4 bytes, before it awaits or allocates the body. A stream that ends
// inside a header or a body is an error matching io.ErrUnexpectedEOF; one
// that ends exactly between two messages gives io.EOF. Send writes the
// header and the body, with one Write when the message is small; a
// message over max bytes is an error and nothing is sent.
//
// Errors on receive: a message over max (ErrTooLarge), invalid UTF-8
// (ErrInvalidUTF8) or a truncated message (io.ErrUnexpectedEOF) ends
// receiving: the connection is closed and every later Recv returns the
// same error. io.EOF is returned unwrapped and, once returned, by every
// later Recv; it does not close the connection, which may still send.
// Errors start with "framing: " and are matched with errors.Is: send
// errors with ErrTooLarge, ErrNewline, ErrInvalidUTF8 and ErrBroken.
//
// Concurrency and contexts: one Send and one Recv may run at the same
// time; concurrent Sends are serialised, and so are concurrent Recvs. When
// the context of a blocked Send or Recv ends, it sets the connection's
// write or read deadline in the past to interrupt it, then resets it to
// none (a context that can never end, such as context.Background, leaves
// deadlines alone), and the call returns an error matching ctx.Err(),
// never io.EOF. An interrupted Recv keeps what it read of a message, and
// the next Recv continues it. An interrupted Send that had written part of
// its message leaves the peer with a partial message: its error and those
// of every later Send match ErrBroken, and nothing more is written.
package framing
