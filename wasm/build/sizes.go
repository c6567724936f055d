package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

// A wasm module is a sequence of sections (WebAssembly core spec, binary
// format): an id byte, a LEB128 size, and the contents.
const (
	secCustom = 0
	secImport = 2
	secCode   = 10
	secData   = 11
)

// funcSize is one function of a module: its name from the "name" custom
// section (which the build keeps without -s) and its body's size.
type funcSize struct {
	name string
	size int
}

// moduleSizes is where a module's bytes go.
type moduleSizes struct {
	total, code, data int
	funcs             []funcSize
}

// analyze reads a wasm module's sections: the function bodies of the code
// section, named by the name section, and the size of the data section.
func analyze(wasm []byte) (*moduleSizes, error) {
	if !bytes.HasPrefix(wasm, []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, errors.New("not a WebAssembly module")
	}
	m := &moduleSizes{total: len(wasm)}
	r := bytes.NewReader(wasm[8:])
	imported := 0
	var bodies []int
	names := map[int]string{}
	for r.Len() > 0 {
		id, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if size > uint64(r.Len()) {
			return nil, fmt.Errorf("section %d: %d bytes, %d left", id, size, r.Len())
		}
		sec := make([]byte, size)
		if _, err := io.ReadFull(r, sec); err != nil {
			return nil, err
		}
		sr := bytes.NewReader(sec)
		switch id {
		case secImport:
			imported, err = countImportedFuncs(sr)
		case secCode:
			m.code = len(sec)
			bodies, err = codeBodies(sr)
		case secData:
			m.data = len(sec)
		case secCustom:
			var name string
			if name, err = readName(sr); err == nil && name == "name" {
				err = funcNames(sr, names)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
	}
	for i, size := range bodies {
		name, ok := names[imported+i]
		if !ok {
			name = fmt.Sprintf("func[%d]", imported+i)
		}
		m.funcs = append(m.funcs, funcSize{name, size})
	}
	return m, nil
}

func readName(r *bytes.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > uint64(r.Len()) {
		return "", io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// countImportedFuncs reads the import section: imported functions come
// first in the function index space.
func countImportedFuncs(r *bytes.Reader) (int, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	funcs := 0
	for range n {
		for range 2 { // module and field names
			if _, err := readName(r); err != nil {
				return 0, err
			}
		}
		kind, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0: // function: a type index
			funcs++
			_, err = binary.ReadUvarint(r)
		case 1: // table: a reference type and limits
			if _, err = r.ReadByte(); err == nil {
				err = skipLimits(r)
			}
		case 2: // memory: limits
			err = skipLimits(r)
		case 3: // global: a value type and mutability
			_, err = r.Seek(2, io.SeekCurrent)
		default:
			err = fmt.Errorf("import kind %d", kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return funcs, nil
}

func skipLimits(r *bytes.Reader) error {
	flags, err := r.ReadByte()
	if err != nil {
		return err
	}
	if _, err := binary.ReadUvarint(r); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = binary.ReadUvarint(r)
	}
	return err
}

// codeBodies returns the size of each function body, with its size field.
func codeBodies(r *bytes.Reader) ([]int, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	sizes := make([]int, 0, n)
	for range n {
		before := r.Len()
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if _, err := r.Seek(int64(size), io.SeekCurrent); err != nil {
			return nil, err
		}
		sizes = append(sizes, before-r.Len())
	}
	return sizes, nil
}

// funcNames reads the function names subsection (id 1) of a name section.
func funcNames(r *bytes.Reader, names map[int]string) error {
	for r.Len() > 0 {
		id, err := r.ReadByte()
		if err != nil {
			return err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		if id != 1 {
			if _, err := r.Seek(int64(size), io.SeekCurrent); err != nil {
				return err
			}
			continue
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		for range n {
			idx, err := binary.ReadUvarint(r)
			if err != nil {
				return err
			}
			name, err := readName(r)
			if err != nil {
				return err
			}
			names[int(idx)] = name
		}
	}
	return nil
}

// domainPrefix matches the first path element of a package path that is
// a domain, as the name section spells it ("/" becomes "_").
var domainPrefix = regexp.MustCompile(`^(vendor_)?[a-z0-9-]+(\.[a-z0-9-]+)*\.(com|org|net|io|in|dev|co)_`)

// symbolPackage is the package a function belongs to, as the name section
// spells it: Go's linker writes "/", "(", "*" and ")" as "_", so
// "github.com/x/y.(*T).M" is "github.com_x_y.__T_.M", and the package is
// what comes before the first dot after a leading domain. Generated type
// functions ("type:.eq.T", spelt "type_.eq.T") count as "type:".
func symbolPackage(sym string) string {
	if strings.HasPrefix(sym, "type_.") {
		return "type:"
	}
	from := len(domainPrefix.FindString(sym))
	if dot := strings.IndexByte(sym[from:], '.'); dot >= 0 {
		sym = sym[:from+dot]
	}
	return strings.ReplaceAll(sym, "_", "/")
}

// writeSizes prints where a module's bytes go: the code section by package
// and its largest functions, and the data section.
func writeSizes(w io.Writer, m *moduleSizes, top int) error {
	byPkg := map[string]int{}
	for _, f := range m.funcs {
		byPkg[symbolPackage(f.name)] += f.size
	}
	type row struct {
		name string
		size int
	}
	var pkgs []row
	for p, s := range byPkg {
		pkgs = append(pkgs, row{p, s})
	}
	bySize := func(a, b row) int {
		if a.size != b.size {
			return b.size - a.size
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(pkgs, bySize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "client.wasm\t%d\t\t\n", m.total)
	fmt.Fprintf(tw, "data section\t%d\t%.1f%%\t\n", m.data, 100*float64(m.data)/float64(m.total))
	fmt.Fprintf(tw, "code section\t%d\t%.1f%%\t\n", m.code, 100*float64(m.code)/float64(m.total))
	fmt.Fprintln(tw, "\t\t\t")
	fmt.Fprintln(tw, "code by package\tbytes\tof code\t")
	for _, p := range pkgs {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t\n", p.name, p.size, 100*float64(p.size)/float64(m.code))
	}
	funcs := make([]row, len(m.funcs))
	for i, f := range m.funcs {
		funcs[i] = row(f)
	}
	slices.SortFunc(funcs, bySize)
	fmt.Fprintln(tw, "\t\t\t")
	fmt.Fprintln(tw, "largest functions\tbytes\t\t")
	for _, f := range funcs[:min(top, len(funcs))] {
		fmt.Fprintf(tw, "%s\t%d\t\t\n", f.name, f.size)
	}
	return tw.Flush()
}
