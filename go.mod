module github.com/ferrygw/ferry

go 1.26
